package executortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// Harness is what the contract suite needs of one executor under test.
type Harness struct {
	// Executor is the executor under test (required).
	Executor executors.Executor
	// Runner is the runner section the executor was built for (required):
	// List must only return names with executors.ResourcePrefix(Runner),
	// and Dump must never contain its token.
	Runner *config.Runner
	// NewSpec returns a valid JobSpec for the default flavor, with a job id
	// and resource name never used before (required; NewSpecFunc builds
	// one).
	NewSpec func(t *testing.T) executors.JobSpec
	// Kill, when set, makes the job of a launched resource die, so that the
	// suite can check that Check notices.
	Kill func(t *testing.T, res executors.Resource)
	// Foreign, when set, creates a resource in the same backend that does
	// not belong to Runner and returns its name: List must not return it.
	Foreign func(t *testing.T) string
	// Timeout bounds each executor call (default 2 minutes).
	Timeout time.Duration
}

var jobIDs atomic.Int64

func init() {
	// Unique across processes too, so leftovers of an earlier run on a real
	// backend (containers, apps) do not collide.
	jobIDs.Store(time.Now().UnixMilli() % 1_000_000_000 * 1000)
}

// NextJobID returns a job id never returned before in this process.
func NextJobID() int64 { return jobIDs.Add(1) }

// NewJob returns a valid job payload (parsed from JSON, Raw set) with the
// given id and variables. Its token is a fake job token.
func NewJob(id int64, vars ...coordinator.Variable) (*coordinator.Job, error) {
	payload := map[string]any{
		"id":              id,
		"token":           fmt.Sprintf("fake-job-token-%d", id),
		"allow_git_fetch": true,
		"job_info": map[string]any{
			"id": id, "name": "test", "stage": "test", "project_id": 1,
			"project_name": "project", "project_full_path": "group/project",
		},
		"git_info": map[string]any{
			"repo_url": fmt.Sprintf("https://gitlab-ci-token:fake-job-token-%d@gitlab.example/group/project.git", id),
			"ref":      "main", "sha": strings.Repeat("a", 40), "ref_type": "branch", "depth": 1,
		},
		"runner_info": map[string]any{"timeout": 3600},
		"variables":   append([]coordinator.Variable{{Key: "CI_JOB_ID", Value: fmt.Sprint(id), Public: true}}, vars...),
		"steps": []map[string]any{{
			"name": "script", "script": []string{"echo hello"}, "timeout": 3600, "when": "on_success",
		}},
		"image":    map[string]any{"name": "alpine:3"},
		"features": map[string]any{"trace_sections": true},
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("marshal fake job %d: %w", id, err)
	}
	return coordinator.ParseJob(raw)
}

// NewSpecFunc returns a Harness.NewSpec for runner r: each spec has a
// fresh job id (NextJobID) and its deterministic resource name.
func NewSpecFunc(r *config.Runner) func(t *testing.T) executors.JobSpec {
	return func(t *testing.T) executors.JobSpec {
		t.Helper()
		job, err := NewJob(NextJobID())
		require.NoError(t, err)
		return executors.JobSpec{Job: job, ResourceName: executors.ResourceName(r, job.ID)}
	}
}

// Run runs the executor contract suite. newExecutor is called once per
// case and returns a fresh Harness; resources the suite provisions are
// decommissioned at the end of each case.
func Run(t *testing.T, newExecutor func(t *testing.T) Harness) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"Provision returns the named resource with a weight", testProvision},
		{"ExpectedWeight of the default flavor and unknown flavor", testExpectedWeight},
		{"Launch marks the resource launched", testLaunch},
		{"Launch twice is a no-op", testLaunchTwice},
		{"Dump and Restore round trip", testDumpRestore},
		{"Adopt finds a provisioned resource by name", testAdopt},
		{"List returns only the runner's resources", testList},
		{"Decommission is idempotent and removes the resource", testDecommission},
		{"Check sees a launched resource and its death", testCheck},
		{"Provision honours a cancelled context", testProvisionCancelled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newExecutor(t)
			require.NotNil(t, h.Executor, "Harness.Executor is required")
			require.NotNil(t, h.Runner, "Harness.Runner is required")
			require.NotNil(t, h.NewSpec, "Harness.NewSpec is required")
			if h.Timeout <= 0 {
				h.Timeout = 2 * time.Minute
			}
			tc.fn(t, &suite{h: h})
		})
	}
}

// suite holds one case's harness.
type suite struct {
	h Harness
}

func (s *suite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// provision provisions a resource for a fresh spec and decommissions it at
// the end of the test.
func (s *suite) provision(t *testing.T) (executors.JobSpec, executors.Resource) {
	t.Helper()
	spec := s.h.NewSpec(t)
	res, err := s.h.Executor.Provision(s.ctx(t), spec)
	if res != nil {
		s.cleanup(t, res)
	}
	require.NoError(t, err)
	require.NotNil(t, res)
	return spec, res
}

func (s *suite) cleanup(t *testing.T, res executors.Resource) {
	t.Helper()
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
		defer cancel()
		if err := s.h.Executor.Decommission(ctx, res); err != nil {
			t.Errorf("clean-up: decommission %s: %v", res.Name(), err)
		}
	})
}

func (s *suite) launch(t *testing.T, res executors.Resource, spec executors.JobSpec) executors.Resource {
	t.Helper()
	launched, err := s.h.Executor.Launch(s.ctx(t), res, spec)
	require.NoError(t, err)
	require.NotNil(t, launched)
	return launched
}

func (s *suite) listedNames(t *testing.T) []string {
	t.Helper()
	listed, err := s.h.Executor.List(s.ctx(t))
	require.NoError(t, err)
	names := make([]string, 0, len(listed))
	for _, l := range listed {
		names = append(names, l.Name)
	}
	return names
}

func testProvision(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	require.Equal(t, spec.ResourceName, res.Name())
	require.NotEmpty(t, res.ID())
	require.Positive(t, res.Weight())
	require.False(t, res.Launched(), "a freshly provisioned resource is not launched")
	want, err := s.h.Executor.ExpectedWeight(s.ctx(t), spec.Job)
	require.NoError(t, err)
	require.InDelta(t, want, res.Weight(), 1e-9, "the default flavor's resource weighs its expected weight")
}

func testExpectedWeight(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	spec := s.h.NewSpec(t)
	w, err := s.h.Executor.ExpectedWeight(ctx, spec.Job)
	require.NoError(t, err)
	require.Positive(t, w)

	maxW, err := s.h.Executor.MaxWeight(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, maxW, w, "MaxWeight is at least the default flavor's weight")

	flavors, err := s.h.Executor.Flavors(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, flavors)

	job, err := NewJob(NextJobID(), coordinator.Variable{Key: quota.FlavorVariable, Value: "NO-SUCH-FLAVOR", Public: true})
	require.NoError(t, err)
	_, err = s.h.Executor.ExpectedWeight(ctx, job)
	require.Error(t, err)
	je, ok := errors.AsType[*executors.JobError](err)
	require.True(t, ok, "unknown flavor must be a *executors.JobError, got %T: %v", err, err)
	require.Contains(t, je.Public, "NO-SUCH-FLAVOR")
	for name := range flavors {
		require.Contains(t, je.Public, name, "the public message lists the allowed flavors")
	}
	require.Equal(t, je.Public, executors.PublicMessage(err))
}

func testLaunch(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	launched := s.launch(t, res, spec)
	require.True(t, launched.Launched())
	require.Equal(t, res.ID(), launched.ID())
	require.Equal(t, res.Name(), launched.Name())
	require.InDelta(t, res.Weight(), launched.Weight(), 1e-9)
}

func testLaunchTwice(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	first := s.launch(t, res, spec)
	second := s.launch(t, first, spec)
	require.True(t, second.Launched())
	require.Equal(t, first.ID(), second.ID())
	require.Equal(t, first.Name(), second.Name())
}

func testDumpRestore(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	launched := s.launch(t, res, spec)
	for _, r := range []executors.Resource{res, launched} {
		raw, err := s.h.Executor.Dump(r)
		require.NoError(t, err)
		require.True(t, json.Valid(raw), "Dump returns JSON")
		if tok := s.h.Runner.Token.Reveal(); tok != "" {
			require.NotContains(t, string(raw), tok, "a dump never holds the runner token")
		}
		if tok := s.h.Runner.CCToken.Reveal(); tok != "" {
			require.NotContains(t, string(raw), tok, "a dump never holds the Clever token")
		}
		got, err := s.h.Executor.Restore(s.ctx(t), raw)
		require.NoError(t, err)
		require.Equal(t, r.ID(), got.ID())
		require.Equal(t, r.Name(), got.Name())
		require.InDelta(t, r.Weight(), got.Weight(), 1e-9)
		require.Equal(t, r.Launched(), got.Launched())
	}
}

func testAdopt(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	got, err := s.h.Executor.Adopt(s.ctx(t), spec.ResourceName, spec.Job)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Equal(t, res.ID(), got.ID())
	require.Equal(t, res.Name(), got.Name())
	require.Positive(t, got.Weight())

	unknown := s.h.NewSpec(t)
	got, err = s.h.Executor.Adopt(s.ctx(t), unknown.ResourceName, unknown.Job)
	require.NoError(t, err)
	require.Nil(t, got, "Adopt returns (nil, nil) for a name that was never provisioned")
}

func testList(t *testing.T, s *suite) {
	_, a := s.provision(t)
	_, b := s.provision(t)
	foreign := ""
	if s.h.Foreign != nil {
		foreign = s.h.Foreign(t)
	}
	names := s.listedNames(t)
	require.Contains(t, names, a.Name())
	require.Contains(t, names, b.Name())
	prefix := executors.ResourcePrefix(s.h.Runner)
	for _, n := range names {
		require.True(t, strings.HasPrefix(n, prefix), "List returned %q without the runner prefix %q", n, prefix)
	}
	if foreign != "" {
		require.NotContains(t, names, foreign)
	}
}

func testDecommission(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	launched := s.launch(t, res, spec)
	require.NoError(t, s.h.Executor.Decommission(s.ctx(t), launched))
	require.NoError(t, s.h.Executor.Decommission(s.ctx(t), launched), "Decommission of a resource already gone is a success")
	require.NoError(t, s.h.Executor.Decommission(s.ctx(t), res), "the unlaunched value of a gone resource too")

	require.NotContains(t, s.listedNames(t), res.Name())
	got, err := s.h.Executor.Adopt(s.ctx(t), spec.ResourceName, spec.Job)
	require.NoError(t, err)
	require.Nil(t, got, "Adopt finds nothing after Decommission")

	st, err := s.h.Executor.Check(s.ctx(t), launched)
	require.NoError(t, err)
	require.Contains(t, []executors.Liveness{executors.Gone, executors.LivenessUnknown}, st.Liveness,
		"Check after Decommission reports Gone (or Unknown when unsupported)")
}

func testCheck(t *testing.T, s *suite) {
	spec, res := s.provision(t)
	launched := s.launch(t, res, spec)
	st, err := s.h.Executor.Check(s.ctx(t), launched)
	require.NoError(t, err)
	require.NotEqual(t, executors.Gone, st.Liveness, "a launched resource is not gone")
	if s.h.Kill == nil {
		return
	}
	s.h.Kill(t, launched)
	// A real backend may take a moment to notice; poll briefly.
	deadline := time.Now().Add(s.h.Timeout)
	for {
		st, err = s.h.Executor.Check(s.ctx(t), launched)
		require.NoError(t, err)
		if st.Liveness == executors.Exited || st.Liveness == executors.Gone {
			return
		}
		require.True(t, time.Now().Before(deadline), "Check still reports %v after Kill", st.Liveness)
		timer := time.NewTimer(50 * time.Millisecond)
		select {
		case <-timer.C:
		case <-t.Context().Done():
			timer.Stop()
			t.Fatal("test context done while waiting for Check")
		}
	}
}

func testProvisionCancelled(t *testing.T, s *suite) {
	spec := s.h.NewSpec(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := s.h.Executor.Provision(ctx, spec)
	if res != nil {
		s.cleanup(t, res)
	}
	require.Error(t, err)
	require.ErrorIs(t, err, context.Canceled)
	if res == nil {
		require.False(t, slices.Contains(s.listedNames(t), spec.ResourceName),
			"nothing was created for a cancelled Provision that returned no resource")
	}
}
