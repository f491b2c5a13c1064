package dispatcher

import (
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/state"
)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// acquire takes a job from gitlabfake as the harness runner would.
func acquire(t *testing.T, h *harness) *coordinator.Job {
	t.Helper()
	p := acquirePending(t, h)
	require.NoError(t, h.coord.AcceptJob(t.Context(), p.ID, p.Token))
	return p
}

// acquirePending acquires a job without accepting it (two-phase commit):
// it stays pending on the coordinator.
func acquirePending(t *testing.T, h *harness) *coordinator.Job {
	t.Helper()
	h.enqueue("S")
	p, err := h.coord.RequestJob(t.Context())
	require.NoError(t, err)
	require.NotNil(t, p)
	return p
}

func record(h *harness, p *coordinator.Job, phase state.Phase) state.Job {
	w, _ := h.fake.ExpectedWeight(context.Background(), p)
	return state.Job{
		Runner: h.runner.ShortID(), JobID: p.ID, Token: p.Token.Reveal(), ProjectID: p.JobInfo.ProjectID,
		ExpectedWeight: w, Phase: phase, ResourceName: executors.ResourceName(h.runner, p.ID),
		Payload: p.Raw, AcquiredAt: time.Now(),
	}
}

func withResource(t *testing.T, h *harness, rec state.Job, p *coordinator.Job, launch bool) state.Job {
	t.Helper()
	spec := executors.JobSpec{Job: p, ResourceName: rec.ResourceName}
	res, err := h.fake.Provision(t.Context(), spec)
	require.NoError(t, err)
	if launch {
		res, err = h.fake.Launch(t.Context(), res, spec)
		require.NoError(t, err)
	}
	dump, err := h.fake.Dump(res)
	require.NoError(t, err)
	rec.Resource, rec.Weight = dump, res.Weight()
	return rec
}

// TestRestoreResumesEveryPhase restores a state holding a job in every
// phase, as a crash can leave it, and checks each resumes correctly.
func TestRestoreResumesEveryPhase(t *testing.T) {
	for _, storeKind := range []string{"memory", "file"} {
		t.Run(storeKind, func(t *testing.T) {
			var store state.Store = state.NewMemory()
			path := filepath.Join(t.TempDir(), "state.json")
			if storeKind == "file" {
				fs, err := state.Open(path, quietLog())
				require.NoError(t, err)
				store = fs
			}
			var manual atomic.Int64 // the job the test plays itself
			// 8 restored jobs: ForceReserve may exceed a cap (a fact after a
			// restart); give the invariant checker room for them.
			h := newHarness(t, harnessOpts{store: store, provisioning: 10, innerRunner: func(h *harness, s executors.JobSpec) {
				if s.Job.ID != manual.Load() {
					succeedSoon(h, s)
				}
			}})

			pending := acquire(t, h)
			orphaned := acquire(t, h) // created before the crash, not recorded
			provisioned := acquire(t, h)
			launched := acquire(t, h)
			running := acquire(t, h)
			manual.Store(running.ID)
			failing := acquire(t, h)

			recs := []state.Job{record(h, pending, state.PhasePending)}
			// Crash right after acquisition: only the intent was written,
			// not yet weighed (one valid job, one with an invalid flavor).
			unweighed := acquirePending(t, h) // accepted at restore
			recs = append(recs, intentRecord(h.runner, unweighed, time.Now()))
			h.gl.Enqueue(gitlabfake.JobSpec{RunnerToken: testRunnerToken, Variables: map[string]string{"CI_CLEVER_CLOUD_FLAVOR": "HUGE"}})
			huge, err := h.coord.RequestJob(t.Context())
			require.NoError(t, err)
			recs = append(recs, intentRecord(h.runner, huge, time.Now()))
			_, err = h.fake.Provision(t.Context(), executors.JobSpec{Job: orphaned, ResourceName: executors.ResourceName(h.runner, orphaned.ID)})
			require.NoError(t, err)
			recs = append(recs, record(h, orphaned, state.PhasePending))
			recs = append(recs, withResource(t, h, record(h, provisioned, state.PhaseProvisioned), provisioned, false))
			recs = append(recs, withResource(t, h, record(h, launched, state.PhaseLaunched), launched, true))
			run := withResource(t, h, record(h, running, state.PhaseRunning), running, true)
			run.Payload, run.StartedAt = nil, time.Now()
			recs = append(recs, run)
			fail := withResource(t, h, record(h, failing, state.PhaseDecommissioning), failing, false)
			fail.Payload = nil
			fail.PendingFailure = &state.Failure{Reason: "script_failure", Message: "The launch failed before the restart."}
			recs = append(recs, fail)
			stranger := state.Job{Runner: "heptapod:abcd1234", JobID: 999999, Token: "x", Phase: state.PhaseRunning, ResourceName: "hpd-job-abcd1234-999999"}
			recs = append(recs, stranger)
			for _, r := range recs {
				store.Put(r)
			}
			require.NoError(t, store.Sync(t.Context()))
			require.Equal(t, 5, h.fake.Provisioned())

			h.start()
			ids := []int64{pending.ID, orphaned.ID, provisioned.ID, launched.ID, running.ID, failing.ID}
			h.waitJobs([]int64{unweighed.ID, huge.ID}, 20*time.Second, final)
			j, _ := h.gl.Job(unweighed.ID)
			require.Equal(t, gitlabfake.StateSuccess, j.State)
			j, _ = h.gl.Job(huge.ID)
			require.Equal(t, gitlabfake.StateFailed, j.State)
			require.Contains(t, string(j.Trace), "possible choices are [XS S M L XL 2XL 3XL]")
			h.waitJobs(ids[:4], 20*time.Second, final)
			require.NoError(t, h.gl.SimulateRun(running.ID, "still running\n", gitlabfake.StateSuccess))
			h.waitJobs(ids, 20*time.Second, final)
			for _, id := range ids[:5] {
				j, _ := h.gl.Job(id)
				require.Equal(t, gitlabfake.StateSuccess, j.State, "job %d", id)
			}
			j, _ = h.gl.Job(failing.ID)
			require.Equal(t, gitlabfake.StateFailed, j.State)
			require.Contains(t, string(j.Trace), "The launch failed before the restart.")

			since := time.Now()
			require.Eventually(t, func() bool {
				s := h.d.Snapshot()
				return s.Time.After(since) && len(s.Jobs) == 1 && s.Ledger.Jobs == 0 && s.Ledger.WeightUsed == 0
			}, 10*time.Second, time.Millisecond, "%+v", h.d.Snapshot())
			require.Equal(t, int64(999999), h.d.Snapshot().Jobs[0].JobID, "a job of an unknown runner is kept")
			require.Equal(t, 7, h.fake.Provisioned(), "the orphaned resource was adopted, not created twice")
			require.Equal(t, 0, h.cloud.Live(h.prefix()))
			require.NoError(t, h.stop())

			if fs, ok := store.(*state.FileStore); ok {
				require.NoError(t, fs.Close(t.Context()))
				again, err := state.Open(path, quietLog())
				require.NoError(t, err)
				f, err := again.Load()
				require.NoError(t, err)
				require.Len(t, f.Jobs, 1, "only the unknown runner's job stays persisted")
				require.NoError(t, again.Close(t.Context()))
			}
			h.requireInvariants()
		})
	}
}

// gatedCoordinator hands out no job while closed.
type gatedCoordinator struct {
	Coordinator
	closed   atomic.Bool
	inflight atomic.Int64
}

func (g *gatedCoordinator) RequestJob(ctx context.Context) (*coordinator.Job, error) {
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	if g.closed.Load() {
		return nil, nil
	}
	return g.Coordinator.RequestJob(ctx)
}

// TestCrashRestartLosesNothing kills the dispatcher at random moments (no
// graceful shutdown: the next incarnation starts from what the store held
// at the crash, while the old one's in-flight calls still complete on the
// shared cloud) and restarts it: no job is lost, no resource leaks.
func TestCrashRestartLosesNothing(t *testing.T) {
	gl := gitlabfake.New(gitlabfake.Options{Seed: 3}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(testRunnerToken)
	cloud := executortest.NewCloud()
	var store state.Store = state.NewMemory()
	slow := func(h *harness, spec executors.JobSpec) {
		id := spec.Job.ID
		go func() {
			t := time.NewTimer(time.Duration(5+id%20) * time.Millisecond)
			defer t.Stop()
			<-t.C
			_ = h.gl.SimulateRun(id, "ran\n", gitlabfake.StateSuccess)
		}()
	}
	opts := func() harnessOpts {
		return harnessOpts{
			gl: gl, cloud: cloud, store: store, concurrent: 8, provisioning: 4, refJobs: 4,
			innerRunner: slow,
			fake: executortest.Options{Delays: map[executortest.Op]time.Duration{
				executortest.OpProvision: 3 * time.Millisecond, executortest.OpLaunch: 2 * time.Millisecond,
				executortest.OpDecommission: 2 * time.Millisecond,
			}},
			mutate: func(c *config.Config) { c.ReconcileInterval = 30 * scaled },
		}
	}
	var ids []int64
	flavors := []string{"XS", "S", "M", "L", ""}
	for i := range 40 {
		ids = append(ids, gl.Enqueue(gitlabfake.JobSpec{
			RunnerToken: testRunnerToken,
			Variables:   map[string]string{"CI_CLEVER_CLOUD_FLAVOR": flavors[i%len(flavors)]},
		}).ID)
	}
	rng := rand.New(rand.NewPCG(4, 2))
	for round := range 6 {
		h := newHarness(t, opts())
		gate := &gatedCoordinator{Coordinator: h.coord}
		h.d.runners[h.runner.ShortID()].coord = gate
		h.start()
		wait := time.NewTimer(time.Duration(5+rng.IntN(40)) * time.Millisecond)
		<-wait.C
		// Crash: stop handing out jobs (a job in the HTTP answer of a
		// killed process is the coordinator's to time out), copy what
		// the store holds, kill.
		gate.closed.Store(true)
		require.Eventually(t, func() bool { return gate.inflight.Load() == 0 }, 10*time.Second, time.Millisecond)
		drained := time.Now()
		require.Eventually(t, func() bool {
			s := h.d.Snapshot()
			return s.Time.After(drained) && len(s.Runners) == 1 && !s.Runners[0].Polling
		}, 10*time.Second, time.Millisecond)
		f, err := store.Load()
		require.NoError(t, err)
		next := state.NewMemory()
		for _, j := range f.Jobs {
			next.Put(j)
		}
		close(h.force)
		require.NoError(t, h.stop())
		h.requireInvariants()
		t.Logf("round %d: crashed with %d tracked jobs, %d live resources", round, len(f.Jobs), cloud.Live(""))
		store = next
	}
	h := newHarness(t, opts())
	h.start()
	h.waitJobs(ids, 60*time.Second, final)
	h.waitIdle(20 * time.Second)
	require.Eventually(t, func() bool { return cloud.Live("") == 0 }, 20*time.Second, time.Millisecond,
		"leaked: %v", cloud.Names(""))
	for _, id := range ids {
		j, _ := gl.Job(id)
		if j.State == gitlabfake.StateFailed {
			require.NotEmpty(t, j.FailureReason, "job %d", id)
		} else {
			require.Equal(t, gitlabfake.StateSuccess, j.State, "job %d", id)
		}
	}
	h.requireInvariants()
}
