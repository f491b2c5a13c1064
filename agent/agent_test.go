package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

const testRunnerToken = "glrt-agent-test-token"

func newFake(t *testing.T, opts gitlabfake.Options) *gitlabfake.Server {
	t.Helper()
	s := gitlabfake.New(opts).Start()
	t.Cleanup(s.Close)
	s.AddRunner(testRunnerToken)
	return s
}

// acquire enqueues spec and acquires it as a runner would.
func acquire(t *testing.T, s *gitlabfake.Server, spec gitlabfake.JobSpec, graceful bool) *coordinator.Job {
	t.Helper()
	s.Enqueue(spec)
	c := coordinator.New(s.URL(), config.Secret(testRunnerToken), coordinator.Options{Features: map[string]bool{"cancel_gracefully": graceful}})
	job, err := c.RequestJob(t.Context())
	require.NoError(t, err)
	require.NotNil(t, job)
	return job
}

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

func testOptions(t *testing.T, s *gitlabfake.Server, job *coordinator.Job) Options {
	return Options{
		CoordinatorURL:    s.URL(),
		Job:               job,
		BuildsDir:         t.TempDir(),
		Logger:            testLogger(t),
		TraceInterval:     30 * time.Millisecond,
		KeepAliveInterval: 30 * time.Millisecond,
		KillGrace:         300 * time.Millisecond,
		RetryBackoff:      10 * time.Millisecond,
		MaxUpdateWait:     20 * time.Millisecond,
		DockerAvailable:   func() bool { return false },
	}
}

func noGit(job *coordinator.Job) {
	job.Variables = append(job.Variables, coordinator.Variable{Key: "GIT_STRATEGY", Value: "none", Public: true})
}

func TestRunOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		spec        gitlabfake.JobSpec
		fake        gitlabfake.Options
		faults      map[string]gitlabfake.Fault
		edit        func(*coordinator.Job)
		wantState   string
		wantReason  string
		wantExit    int
		minRequests map[string]int
		contains    []string
		notContains []string
	}{
		{
			name:      "success with full log",
			spec:      gitlabfake.JobSpec{Script: []string{"echo hello from $CI_JOB_NAME", "echo second line >&2"}},
			wantState: gitlabfake.StateSuccess,
			contains:  []string{"$ echo hello from $CI_JOB_NAME", "hello from unit-tests", "second line", "Job succeeded"},
		},
		{
			name:        "failing line stops the script and after_script runs",
			spec:        gitlabfake.JobSpec{Script: []string{"echo before", "sh -c 'exit 3'", "echo never-printed"}, AfterScript: []string{"echo after-script-ran"}},
			wantState:   gitlabfake.StateFailed,
			wantReason:  "script_failure",
			wantExit:    3,
			contains:    []string{"before", "after-script-ran", "ERROR: Job failed: exit code 3"},
			notContains: []string{"never-printed"},
		},
		{
			name:        "failing pipeline",
			spec:        gitlabfake.JobSpec{Script: []string{"false | true", "echo unreachable"}},
			wantState:   gitlabfake.StateFailed,
			wantReason:  "script_failure",
			wantExit:    1,
			notContains: []string{"\nunreachable"},
		},
		{
			name:       "timeout",
			spec:       gitlabfake.JobSpec{Script: []string{"echo sleeping", "sleep 30"}, AfterScript: []string{"echo after-timeout"}, Timeout: 1},
			wantState:  gitlabfake.StateFailed,
			wantReason: "job_execution_timeout",
			contains:   []string{"sleeping", "after-timeout", "execution took longer than 1 seconds"},
		},
		{
			name: "masked values across chunks",
			spec: gitlabfake.JobSpec{Script: []string{
				"printf \"value: $PART1\"; sleep 0.2; printf \"$PART2\\n\"",
				"echo token=$CI_JOB_TOKEN",
				"echo \"$MY_SECRET\"",
			}},
			edit: func(j *coordinator.Job) {
				j.Variables = append(j.Variables,
					coordinator.Variable{Key: "MY_SECRET", Value: "sup3r-s3cret-value", Masked: true},
					coordinator.Variable{Key: "PART1", Value: "sup3r-s"},
					coordinator.Variable{Key: "PART2", Value: "3cret-value"})
			},
			wantState:   gitlabfake.StateSuccess,
			contains:    []string{"value: [MASKED]", "token=[MASKED]"},
			notContains: []string{"sup3r-s3cret-value", "value: sup3r"},
		},
		{
			name: "file variables are files",
			spec: gitlabfake.JobSpec{Script: []string{"test -f \"$MY_FILE\"", "cat \"$MY_FILE\"", "echo path=$MY_FILE"}},
			edit: func(j *coordinator.Job) {
				j.Variables = append(j.Variables, coordinator.Variable{Key: "MY_FILE", Value: "file-content-42\n", File: true})
			},
			wantState: gitlabfake.StateSuccess,
			contains:  []string{"file-content-42", "/MY_FILE"},
		},
		{
			name: "get-sources hooks run around the checkout",
			spec: gitlabfake.JobSpec{Script: []string{"echo main script"}},
			edit: func(j *coordinator.Job) {
				setRaw(j, "hooks", []map[string]any{
					{"name": "pre_get_sources_script", "script": []string{"echo pre-hook ran"}},
					{"name": "post_get_sources_script", "script": []string{"echo post-hook ran in $(basename $PWD)"}},
				})
			},
			wantState: gitlabfake.StateSuccess,
			contains:  []string{"pre-hook ran", "post-hook ran in widget", "main script"},
		},
		{
			name: "failing hook fails the job",
			spec: gitlabfake.JobSpec{Script: []string{"echo never-run-main"}},
			edit: func(j *coordinator.Job) {
				setRaw(j, "hooks", []map[string]any{{"name": "pre_get_sources_script", "script": []string{"exit 5"}}})
			},
			wantState:   gitlabfake.StateFailed,
			wantReason:  "script_failure",
			wantExit:    5,
			notContains: []string{"\nnever-run-main"},
		},
		{
			name:       "services without docker",
			spec:       gitlabfake.JobSpec{Services: []gitlabfake.Service{{Name: "postgres:16", Alias: "db"}}},
			wantState:  gitlabfake.StateFailed,
			wantReason: "runner_unsupported",
			contains:   []string{"postgres:16"},
		},
		{
			name:        "transient trace failures are retried",
			faults:      map[string]gitlabfake.Fault{"/jobs/:id/trace": {Statuses: []int{500, 503, -1, 429}, RetryAfter: "0"}},
			spec:        gitlabfake.JobSpec{Script: []string{"echo line one", "sleep 0.2", "echo line two"}},
			wantState:   gitlabfake.StateSuccess,
			contains:    []string{"line one", "line two", "Job succeeded"},
			minRequests: map[string]int{"PATCH /jobs/:id/trace": 5},
		},
		{
			name:        "final update repeated while 202",
			fake:        gitlabfake.Options{FinalUpdateAccepted: 2, TraceUpdateInterval: 0},
			spec:        gitlabfake.JobSpec{Script: []string{"echo ok"}},
			wantState:   gitlabfake.StateSuccess,
			minRequests: map[string]int{"PUT /jobs/:id": 4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newFake(t, tc.fake)
			job := acquire(t, s, tc.spec, false)
			for ep, f := range tc.faults {
				s.SetFault(ep, f)
			}
			noGit(job)
			if tc.edit != nil {
				tc.edit(job)
			}
			res, err := Run(t.Context(), testOptions(t, s, job))
			require.NoError(t, err)
			got, ok := s.Job(job.ID)
			require.True(t, ok)
			trace := string(got.Trace)
			require.Equal(t, tc.wantState, got.State, trace)
			require.Equal(t, tc.wantState, res.State)
			require.Equal(t, tc.wantReason, got.FailureReason)
			require.Equal(t, tc.wantExit, got.ExitCode)
			require.Empty(t, got.OutputMismatch)
			require.Equal(t, int64(len(got.Trace)), res.TraceBytes)
			for _, c := range tc.contains {
				require.Contains(t, trace, c)
			}
			for _, c := range tc.notContains {
				require.NotContains(t, trace, c)
			}
			require.NotContains(t, trace, job.Token.Reveal())
			for ep, n := range tc.minRequests {
				require.GreaterOrEqual(t, s.Requests(ep), n, ep)
			}
		})
	}
}

// setRaw sets a top-level key of the job's raw payload.
func setRaw(j *coordinator.Job, key string, v any) {
	var p map[string]any
	if err := json.Unmarshal(j.Raw, &p); err != nil {
		panic(err)
	}
	p[key] = v
	raw, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	j.Raw = raw
}

type runOutcome struct {
	res Result
	err error
}

// runAsync runs the agent in a goroutine; the channel gets its outcome.
func runAsync(ctx context.Context, o Options) <-chan runOutcome {
	done := make(chan runOutcome, 1)
	go func() {
		res, err := Run(ctx, o)
		done <- runOutcome{res, err}
	}()
	return done
}

// TestCancel checks that a cancel from the coordinator kills the script's
// whole process group (including background children) within 5 s.
func TestCancel(t *testing.T) {
	tests := []struct {
		name           string
		graceful       bool
		wantState      string
		wantAfterTrace bool
	}{
		{name: "graceful runs after_script", graceful: true, wantState: gitlabfake.StateCanceled, wantAfterTrace: true},
		{name: "abort", graceful: false, wantState: gitlabfake.StateCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newFake(t, gitlabfake.Options{})
			pidFile := filepath.Join(t.TempDir(), "pid")
			job := acquire(t, s, gitlabfake.JobSpec{
				Script:      []string{"sleep 60 & echo $! > " + pidFile + "; echo started; wait"},
				AfterScript: []string{"echo after-cancel"},
			}, tc.graceful)
			noGit(job)
			done := runAsync(t.Context(), testOptions(t, s, job))
			require.NoError(t, s.WaitAll(t.Context(), func(j gitlabfake.Job) bool {
				return j.ID != job.ID || strings.Contains(string(j.Trace), "started")
			}))
			pid, err := os.ReadFile(pidFile)
			require.NoError(t, err)
			child, err := strconv.Atoi(strings.TrimSpace(string(pid)))
			require.NoError(t, err)
			require.NoError(t, s.Cancel(job.ID))
			canceled := time.Now()
			var out runOutcome
			select {
			case out = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the agent did not stop within 5 s of the cancel")
			}
			require.NoError(t, out.err)
			res := out.res
			require.Less(t, time.Since(canceled), 5*time.Second)
			require.True(t, res.Canceled)
			require.True(t, processDead(child), "background child still alive")
			got, _ := s.Job(job.ID)
			require.Equal(t, tc.wantState, got.State)
			require.Equal(t, tc.wantAfterTrace, strings.Contains(string(got.Trace), "after-cancel"), string(got.Trace))
		})
	}
}

// processDead reports whether pid is gone or a zombie (its parent may be a
// pid 1 that does not reap).
func processDead(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

func TestMapFailureReason(t *testing.T) {
	tests := []struct {
		name      string
		reason    coordinator.FailureReason
		supported []string
		want      coordinator.FailureReason
	}{
		{name: "empty", reason: "", want: ""},
		{name: "always supported", reason: coordinator.JobExecutionTimeout, supported: []string{"script_failure"}, want: coordinator.JobExecutionTimeout},
		{name: "supported", reason: coordinator.RunnerUnsupported, supported: []string{"runner_unsupported"}, want: coordinator.RunnerUnsupported},
		{name: "unsupported", reason: coordinator.RunnerUnsupported, supported: []string{"script_failure"}, want: coordinator.UnknownFailure},
		{name: "no list", reason: coordinator.RunnerUnsupported, want: coordinator.RunnerUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, mapFailureReason(tc.reason, tc.supported))
		})
	}
}

func TestRunWithoutJob(t *testing.T) {
	_, err := Run(context.Background(), Options{})
	require.ErrorIs(t, err, ErrNoJob)
}

// TestInterrupted checks that stopping the agent (SIGTERM → ctx canceled)
// kills the script and still reports the job, as runner_interrupted.
func TestInterrupted(t *testing.T) {
	s := newFake(t, gitlabfake.Options{})
	job := acquire(t, s, gitlabfake.JobSpec{Script: []string{"echo started", "sleep 60"}}, false)
	noGit(job)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, testOptions(t, s, job))
	_, err := s.WaitJob(t.Context(), job.ID, func(j gitlabfake.Job) bool { return strings.Contains(string(j.Trace), "started") })
	require.NoError(t, err)
	cancel()
	out := <-done
	require.NoError(t, out.err)
	require.Equal(t, "failed", out.res.State)
	got, _ := s.Job(job.ID)
	require.Equal(t, gitlabfake.StateFailed, got.State)
	require.Equal(t, "runner_interrupted", got.FailureReason)
	require.Contains(t, string(got.Trace), "interrupted")
}
