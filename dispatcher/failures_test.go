package dispatcher

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
)

func TestInvalidFlavorFailsOnlyThatJob(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	huge := h.enqueue("HUGE")
	var next []int64
	for range 3 {
		next = append(next, h.enqueue("S"))
	}
	h.start()
	h.waitJobs(append([]int64{huge}, next...), 20*time.Second, final)

	j, _ := h.gl.Job(huge)
	require.Equal(t, gitlabfake.StateFailed, j.State)
	require.Equal(t, "script_failure", j.FailureReason)
	trace := string(j.Trace)
	require.Contains(t, trace, "HUGE")
	require.Contains(t, trace, "[XS S M L XL 2XL 3XL]", "allowed flavors listed")
	require.Contains(t, trace, ansiBoldRed+jobLogPrefix)
	require.True(t, strings.HasSuffix(trace, ansiReset+"\n"))
	for _, id := range next {
		j, _ := h.gl.Job(id)
		require.Equal(t, gitlabfake.StateSuccess, j.State, "job %d after the invalid one", id)
	}
	require.Equal(t, 3, h.fake.Provisioned(), "nothing provisioned for the invalid flavor")
	h.waitIdle(5 * time.Second)
	h.requireInvariants()
}

func TestFaultsEveryJobEndsWithAReason(t *testing.T) {
	h := newHarness(t, harnessOpts{
		concurrent: 10, provisioning: 4,
		fake: executortest.Options{Seed: 7, Failures: map[executortest.Op]executortest.Failure{
			executortest.OpProvisionBefore: {Rate: 0.1},
			executortest.OpProvisionAfter:  {Rate: 0.1},
			executortest.OpDecommission:    {Rate: 0.2},
		}},
	})
	for _, ep := range []string{"/jobs/request", "/job", "/jobs/:id", "/jobs/:id/trace"} {
		h.gl.SetFault(ep, gitlabfake.Fault{ErrorRate: 0.2, Status: 502, Latency: time.Millisecond})
	}
	var ids []int64
	for i := range 80 {
		ids = append(ids, h.enqueue([]string{"XS", "S", "M", "L"}[i%4]))
	}
	h.start()
	h.waitJobs(ids, 60*time.Second, final)
	h.waitIdle(20 * time.Second)
	failed := 0
	for _, id := range ids {
		j, _ := h.gl.Job(id)
		switch j.State {
		case gitlabfake.StateSuccess:
		case gitlabfake.StateFailed:
			failed++
			require.NotEmpty(t, j.FailureReason, "job %d failed without a reason", id)
			require.Contains(t, string(j.Trace), jobLogPrefix, "job %d failed without a log line", id)
		default:
			t.Fatalf("job %d ended %s", id, j.State)
		}
	}
	require.Positive(t, failed, "the fault knobs should have failed some launches")
	require.Equal(t, 0, h.cloud.Live(h.prefix()), "resources left: %v", h.cloud.Names(h.prefix()))
	h.requireInvariants()
}

// heavier wraps a Fake so that resources weigh more than their flavor
// (weight drift, reference §12 item 26).
type heavier struct {
	*executortest.Fake
	factor float64
}

type heavyRes struct {
	executors.Resource
	w float64
}

func (r heavyRes) Weight() float64 { return r.w }

func unwrap(r executors.Resource) executors.Resource {
	if h, ok := r.(heavyRes); ok {
		return h.Resource
	}
	return r
}

func (h heavier) wrap(r executors.Resource) executors.Resource {
	if r == nil {
		return nil
	}
	return heavyRes{Resource: r, w: r.Weight() * h.factor}
}

func (h heavier) Provision(ctx context.Context, s executors.JobSpec) (executors.Resource, error) {
	r, err := h.Fake.Provision(ctx, s)
	return h.wrap(r), err
}

func (h heavier) Launch(ctx context.Context, r executors.Resource, s executors.JobSpec) (executors.Resource, error) {
	r2, err := h.Fake.Launch(ctx, unwrap(r), s)
	return h.wrap(r2), err
}

func (h heavier) Check(ctx context.Context, r executors.Resource) (executors.Status, error) {
	return h.Fake.Check(ctx, unwrap(r))
}

func (h heavier) Decommission(ctx context.Context, r executors.Resource) error {
	return h.Fake.Decommission(ctx, unwrap(r))
}

func (h heavier) Dump(r executors.Resource) (json.RawMessage, error) { return h.Fake.Dump(unwrap(r)) }

// TestCounterLeaks pins the fixes of reference §12 items 24–26: whatever
// happens to a job, the ledger returns to zero (kept resources are released
// and counted as Kept).
func TestCounterLeaks(t *testing.T) {
	cases := []struct {
		name    string
		fake    executortest.Options
		mutate  func(*config.Config)
		heavier float64
		// vanish deletes the resource behind our back before the job ends.
		vanish   bool
		state    string
		kept     int
		provided int
	}{
		{
			name: "launch failed without resource", state: gitlabfake.StateFailed,
			fake: executortest.Options{Failures: map[executortest.Op]executortest.Failure{executortest.OpProvisionBefore: {Rate: 1}}},
		},
		{
			name: "launch failed with resource", state: gitlabfake.StateFailed,
			fake: executortest.Options{Failures: map[executortest.Op]executortest.Failure{executortest.OpLaunch: {Rate: 1}}},
		},
		{
			name: "finished jobs keep resources", state: gitlabfake.StateSuccess, kept: 3,
			mutate: func(c *config.Config) { c.PaasFinishedJobsKeepResources = true },
		},
		{
			name: "launch failures not decommissioned", state: gitlabfake.StateFailed, kept: 3,
			fake:   executortest.Options{Failures: map[executortest.Op]executortest.Failure{executortest.OpLaunch: {Rate: 1}}},
			mutate: func(c *config.Config) { c.PaasDecommissionLaunchFailures = false },
		},
		{
			name: "failed decommissions retried", state: gitlabfake.StateSuccess,
			fake: executortest.Options{Failures: map[executortest.Op]executortest.Failure{executortest.OpDecommission: {Script: []bool{true, true, true, true, true}}}},
		},
		{name: "resource already gone is released once", state: gitlabfake.StateSuccess, vanish: true},
		{
			name: "weight drift on failed launch", state: gitlabfake.StateFailed, heavier: 1.5,
			fake: executortest.Options{Failures: map[executortest.Op]executortest.Failure{executortest.OpLaunch: {Rate: 1}}},
		},
		{name: "weight drift on finished job", state: gitlabfake.StateSuccess, heavier: 1.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h *harness
			o := harnessOpts{fake: tc.fake, mutate: tc.mutate, refJobs: 6}
			if tc.vanish {
				// The job ends, then its resource disappears on its own
				// before the dispatcher deletes it: the deletion finds it
				// gone and the quota is released exactly once. (Vanishing
				// first would race with the liveness check, which rightly
				// fails a running job whose resource is gone.)
				o.innerRunner = func(h *harness, spec executors.JobSpec) {
					id := spec.Job.ID
					go func() {
						_ = h.gl.SimulateRun(id, "Running on a fresh host\n", gitlabfake.StateSuccess)
						h.cloud.Vanish(spec.ResourceName)
					}()
				}
			}
			h = newHarness(t, o)
			if tc.heavier > 0 {
				ex := heavier{Fake: h.fake, factor: tc.heavier}
				h.d.runners[h.runner.ShortID()].exec = ex
			}
			var ids []int64
			for range 3 {
				ids = append(ids, h.enqueue("S"))
			}
			h.start()
			h.waitJobs(ids, 20*time.Second, final)
			for _, id := range ids {
				j, _ := h.gl.Job(id)
				require.Equal(t, tc.state, j.State, "job %d", id)
			}
			since := time.Now()
			require.Eventually(t, func() bool {
				s := h.d.Snapshot()
				return s.Time.After(since) && s.Ledger.Jobs == 0 && s.Ledger.WeightUsed == 0 && s.Ledger.Provisioning == 0 &&
					s.Ledger.Kept == tc.kept && len(s.Jobs) == tc.kept
			}, 10*time.Second, time.Millisecond, "snapshot %+v", h.d.Snapshot())
			require.Equal(t, tc.kept, h.cloud.Live(h.prefix()))
			for _, j := range h.d.Snapshot().Jobs {
				require.Equal(t, "kept", j.Phase)
				require.Zero(t, j.Weight)
			}
			h.requireInvariants()
		})
	}
}

// TestResourceLeftByFailedProvisionIsDeleted: a provisioning that fails
// without returning the resource it left (here: one already exists under
// the job's name) does not leak it.
func TestResourceLeftByFailedProvisionIsDeleted(t *testing.T) {
	h := newHarness(t, harnessOpts{
		fake: executortest.Options{Delays: map[executortest.Op]time.Duration{executortest.OpProvision: 50 * time.Millisecond}},
	})
	id := h.enqueue("")
	h.start()
	require.Eventually(t, func() bool { return h.fake.Calls(executortest.OpProvision) == 1 }, 10*time.Second, time.Millisecond)
	// While our call is in flight, something creates the resource under
	// the job's name: our Provision fails without returning it.
	other := executortest.NewFake(h.cloud, h.runner, executortest.Options{})
	p, err := executortest.NewJob(id)
	require.NoError(t, err)
	_, err = other.Provision(t.Context(), executors.JobSpec{Job: p, ResourceName: executors.ResourceName(h.runner, id)})
	require.NoError(t, err)
	h.waitJobs([]int64{id}, 10*time.Second, final)
	j, _ := h.gl.Job(id)
	require.Equal(t, gitlabfake.StateFailed, j.State)
	h.waitIdle(10 * time.Second)
	require.Zero(t, h.cloud.Live(h.prefix()))
	require.Equal(t, 1, h.cloud.Decommissioned(h.prefix()), "deleted with the job")
	h.requireInvariants()
}
