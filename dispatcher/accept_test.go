package dispatcher

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/state"
)

// acceptHook wraps a Coordinator: before runs ahead of the first AcceptJob,
// after rewrites its outcome.
type acceptHook struct {
	Coordinator
	calls  atomic.Int64
	before func(jobID int64)
	after  func(err error) error
}

func (a *acceptHook) AcceptJob(ctx context.Context, jobID int64, tok config.Secret) error {
	first := a.calls.Add(1) == 1
	if first && a.before != nil {
		a.before(jobID)
	}
	err := a.Coordinator.AcceptJob(ctx, jobID, tok)
	if first && a.after != nil {
		err = a.after(err)
	}
	return err
}

// failingSync fails its first Sync.
type failingSync struct {
	state.Store
	failed atomic.Bool
}

func (f *failingSync) Sync(ctx context.Context) error {
	if f.failed.CompareAndSwap(false, true) {
		return errors.New("disk full")
	}
	return f.Store.Sync(ctx)
}

// testAcceptTimeout is the accept timeout of twoPhaseFake: short, yet long
// enough that an accept sent at once lands in time on a loaded machine.
const testAcceptTimeout = 300 * time.Millisecond

// twoPhaseFake is a gitlabfake that re-queues unaccepted jobs quickly.
func twoPhaseFake(t *testing.T) *gitlabfake.Server {
	t.Helper()
	gl := gitlabfake.New(gitlabfake.Options{Seed: 1, AcceptTimeout: testAcceptTimeout}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(testRunnerToken)
	return gl
}

// TestTwoPhaseAccept: a job is accepted only once its intent is durable;
// one the coordinator does not give us is dropped without report and,
// re-queued by the coordinator, runs later; a lost accept reply does not
// leave the job running untracked.
func TestTwoPhaseAccept(t *testing.T) {
	tests := []struct {
		name string
		// prepare sets faults or wraps the coordinator / store.
		prepare      func(h *harness, hook *acceptHook)
		store        func() state.Store
		wantRequeued int
		wantLog      string
	}{
		{name: "accepted after the intent is durable"},
		{name: "409: dropped, re-queued, run later", prepare: func(h *harness, _ *acceptHook) {
			h.gl.SetFault("/jobs/:id", gitlabfake.Fault{Statuses: []int{409}})
		}, wantRequeued: 1, wantLog: "did not give us this job"},
		{name: "canceled before the accept: dropped, nothing reported", prepare: func(h *harness, hook *acceptHook) {
			hook.before = func(id int64) { _ = h.gl.Cancel(id) }
		}, wantLog: "did not give us this job"},
		{name: "accept failing after retries, not landed: dropped, re-queued, run later", prepare: func(h *harness, _ *acceptHook) {
			h.gl.SetFault("/jobs/:id", gitlabfake.Fault{Statuses: []int{503, 503, 503, 503, 503}})
		}, wantRequeued: 1, wantLog: "the accept did not land"},
		{name: "accept landed but its reply was lost: ours", prepare: func(_ *harness, hook *acceptHook) {
			hook.after = func(err error) error {
				if err != nil {
					return err
				}
				return &coordinator.HTTPError{Method: "PUT", StatusCode: 502}
			}
		}, wantLog: "the accept landed after all"},
		{name: "intent not durable: never accepted, re-queued, run later", store: func() state.Store {
			return &failingSync{Store: state.NewMemory()}
		}, wantRequeued: 1, wantLog: "not accepting it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := harnessOpts{gl: twoPhaseFake(t)}
			if tc.store != nil {
				o.store = tc.store()
			}
			h := newHarness(t, o)
			hook := &acceptHook{Coordinator: h.coord}
			h.d.runners[h.runner.ShortID()].coord = hook
			if tc.prepare != nil {
				tc.prepare(h, hook)
			}
			id := h.enqueue("")
			h.start()
			h.waitJobs([]int64{id}, 20*time.Second, final)
			h.waitIdle(10 * time.Second)
			j, _ := h.gl.Job(id)
			require.True(t, j.TwoPhase || j.Requeued > 0, "acquired with two_phase_job_commit")
			require.Equal(t, tc.wantRequeued, j.Requeued)
			if j.State == gitlabfake.StateCanceled {
				require.Zero(t, h.fake.Calls(executortest.OpProvision), "nothing provisioned for a job not ours")
				require.Equal(t, 1, h.gl.Requests("/jobs/:id"), "only the refused accept: nothing reported")
				require.Empty(t, j.Trace)
			} else {
				require.Equal(t, gitlabfake.StateSuccess, j.State)
				require.Equal(t, 1, h.cloud.Provisioned(h.prefix()), "provisioned once, after the accept")
			}
			require.Zero(t, h.cloud.Live(h.prefix()))
			if tc.wantLog != "" {
				require.Contains(t, h.logs.String(), tc.wantLog)
			}
			h.requireInvariants()
		})
	}
}

// TestRestoreAcceptsIntent: a record whose accept is still owed
// (accept_pending: stopped between the durable intent and the accept) is
// accepted at restart; if the coordinator re-queued the job meanwhile the
// record is dropped and the job is acquired again.
func TestRestoreAcceptsIntent(t *testing.T) {
	tests := []struct {
		name string
		// before runs on the acquired job before the restart.
		before       func(t *testing.T, h *harness, p *coordinator.Job)
		wantRequeued int
		wantLog      string
	}{
		{name: "job still pending: accepted", wantLog: "job accepted"},
		{name: "accept had landed: keep-alive, ours", before: func(t *testing.T, h *harness, p *coordinator.Job) {
			require.NoError(t, h.coord.AcceptJob(t.Context(), p.ID, p.Token))
		}, wantLog: "job accepted"},
		{name: "job re-queued meanwhile: dropped, acquired again", before: func(t *testing.T, h *harness, p *coordinator.Job) {
			_, err := h.gl.WaitJob(t.Context(), p.ID, func(j gitlabfake.Job) bool { return j.Requeued == 1 })
			require.NoError(t, err)
		}, wantRequeued: 1}, // refused and dropped, or accepted after the new assignment: either way once
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gl := gitlabfake.New(gitlabfake.Options{Seed: 1, AcceptTimeout: testAcceptTimeout}).Start()
			t.Cleanup(gl.Close)
			gl.AddRunner(testRunnerToken)
			if tc.wantRequeued == 0 {
				// The job must stay assigned while the dispatcher starts.
				gl = gitlabfake.New(gitlabfake.Options{Seed: 1, AcceptTimeout: time.Minute}).Start()
				t.Cleanup(gl.Close)
				gl.AddRunner(testRunnerToken)
			}
			store := state.NewMemory()
			h := newHarness(t, harnessOpts{gl: gl, store: store})
			p := acquirePending(t, h)
			if tc.before != nil {
				tc.before(t, h, p)
			}
			rec := intentRecord(h.runner, p, time.Now())
			require.True(t, rec.AcceptPending)
			store.Put(rec)
			h.start()
			h.waitJobs([]int64{p.ID}, 20*time.Second, final)
			h.waitIdle(10 * time.Second)
			j, _ := gl.Job(p.ID)
			require.Equal(t, gitlabfake.StateSuccess, j.State)
			require.Equal(t, tc.wantRequeued, j.Requeued)
			require.Equal(t, 1, h.cloud.Provisioned(h.prefix()))
			if tc.wantLog != "" {
				require.Contains(t, h.logs.String(), tc.wantLog)
			}
			h.requireInvariants()
		})
	}
}

// TestReassignedWhileAccepting: the accept owed by a restored record is
// refused (the job was back in the queue) but, before the refusal arrives,
// a poll acquires the job again: the job is accepted again, not dropped.
func TestReassignedWhileAccepting(t *testing.T) {
	gl := twoPhaseFake(t)
	store := state.NewMemory()
	h := newHarness(t, harnessOpts{gl: gl, store: store})
	p := acquirePending(t, h)
	_, err := gl.WaitJob(t.Context(), p.ID, func(j gitlabfake.Job) bool { return j.Requeued == 1 })
	require.NoError(t, err)
	store.Put(intentRecord(h.runner, p, time.Now()))
	hook := &acceptHook{Coordinator: h.coord}
	hook.after = func(err error) error {
		// Hold the refusal until the dispatcher saw the job handed out again.
		require.ErrorIs(t, err, coordinator.ErrJobNotAccepted)
		require.Eventually(t, func() bool {
			return strings.Contains(h.logs.String(), "handed out again a job whose accept is in flight")
		}, 10*time.Second, time.Millisecond)
		return err
	}
	h.d.runners[h.runner.ShortID()].coord = hook
	h.start()
	h.waitJobs([]int64{p.ID}, 20*time.Second, final)
	h.waitIdle(10 * time.Second)
	j, _ := gl.Job(p.ID)
	require.Equal(t, gitlabfake.StateSuccess, j.State)
	require.Equal(t, 1, j.Requeued, "accepted on its second assignment, not left to time out again")
	require.Contains(t, h.logs.String(), "accepting it again")
	require.Equal(t, 1, h.cloud.Provisioned(h.prefix()))
	h.requireInvariants()
}
