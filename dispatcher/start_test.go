package dispatcher

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
)

// launchedJobs records the specs the fake executor launched.
type launchedJobs struct {
	mu    sync.Mutex
	specs map[int64]executors.JobSpec
}

func (l *launchedJobs) add(s executors.JobSpec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.specs == nil {
		l.specs = map[int64]executors.JobSpec{}
	}
	l.specs[s.Job.ID] = s
}

func (l *launchedJobs) get(id int64) (executors.JobSpec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.specs[id]
	return s, ok
}

func (l *launchedJobs) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.specs)
}

func TestWatchTimeoutFailsSilentJob(t *testing.T) {
	h := newHarness(t, harnessOpts{
		watch: true, watchTimeout: 0.03,
		innerRunner: func(*harness, executors.JobSpec) {}, // never writes
	})
	id := h.enqueue("")
	h.start()
	h.waitJobs([]int64{id}, 20*time.Second, final)
	j, _ := h.gl.Job(id)
	require.Equal(t, gitlabfake.StateFailed, j.State)
	require.Equal(t, "runner_system_failure", j.FailureReason)
	require.Contains(t, string(j.Trace), "Job not active (no log) after 0.03 seconds")
	h.waitIdle(5 * time.Second)
	require.Equal(t, 1, h.cloud.Decommissioned(h.prefix()))
	require.Equal(t, 0, h.cloud.Live(h.prefix()))
	h.requireInvariants()
}

func TestCanceledDuringProvisioningIsNotReported(t *testing.T) {
	h := newHarness(t, harnessOpts{
		fake: executortest.Options{Delays: map[executortest.Op]time.Duration{executortest.OpProvision: 100 * time.Millisecond}},
	})
	id := h.enqueue("")
	h.start()
	require.Eventually(t, func() bool { return h.fake.Calls(executortest.OpProvision) >= 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, h.gl.Cancel(id))
	h.waitIdle(10 * time.Second)
	j, _ := h.gl.Job(id)
	require.Equal(t, gitlabfake.StateCanceled, j.State)
	require.Equal(t, 1, h.gl.Requests("/jobs/:id"), "only the accept: no failure report for a canceled job")
	require.Empty(t, j.Trace)
	require.Zero(t, h.cloud.LaunchCount(h.prefix()), "a canceled job is not launched")
	require.Equal(t, 1, h.cloud.Provisioned(h.prefix()))
	require.Equal(t, 0, h.cloud.Live(h.prefix()), "its resource is deleted at once")
	h.requireInvariants()
}

func TestResourceKilledMidJobFailsWithinOneCheck(t *testing.T) {
	var launched launchedJobs
	h := newHarness(t, harnessOpts{innerRunner: func(h *harness, s executors.JobSpec) { launched.add(s) }})
	id := h.enqueue("")
	h.start()
	require.Eventually(t, func() bool {
		s := h.d.Snapshot()
		return len(s.Jobs) == 1 && s.Jobs[0].Phase == "running"
	}, 10*time.Second, time.Millisecond)
	spec, ok := launched.get(id)
	require.True(t, ok)
	_, err := h.coord.AppendTrace(t.Context(), id, spec.Job.Token, 0, []byte("Running the job…\n"))
	require.NoError(t, err)

	// The next finish check must notice (one more may have been in flight
	// when the resource was killed).
	checks := h.fake.Calls(executortest.OpCheck)
	require.True(t, h.cloud.Kill(spec.ResourceName))
	h.waitJobs([]int64{id}, 10*time.Second, final)
	after := h.fake.Calls(executortest.OpCheck)
	require.LessOrEqual(t, after-checks, 2, "detected by the next finish check (one may have been in flight)")

	j, _ := h.gl.Job(id)
	require.Equal(t, gitlabfake.StateFailed, j.State)
	require.Equal(t, "runner_system_failure", j.FailureReason)
	require.Contains(t, string(j.Trace), "Running the job…\n", "the inner runner's log is kept")
	require.Contains(t, string(j.Trace), "exit code 137")
	h.waitIdle(5 * time.Second)
	require.Equal(t, 0, h.cloud.Live(h.prefix()))
	h.requireInvariants()
}

func TestProvisioningSlotFreedOnlyWhenTraceGrows(t *testing.T) {
	var launched launchedJobs
	h := newHarness(t, harnessOpts{
		provisioning: 2, watch: true, watchTimeout: 60, // never times out here
		innerRunner: func(h *harness, s executors.JobSpec) { launched.add(s) },
	})
	var ids []int64
	for range 4 {
		ids = append(ids, h.enqueue("XS"))
	}
	h.start()
	require.Eventually(t, func() bool { return launched.count() == 2 }, 10*time.Second, time.Millisecond)
	// Let many watch polls and poll cycles pass: nothing else may start.
	reads := h.gl.Requests("/projects/:id/jobs/:job_id/trace")
	require.Eventually(t, func() bool { return h.gl.Requests("/projects/:id/jobs/:job_id/trace") >= reads+20 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 2, h.fake.Provisioned(), "provisioning cap held while no trace grew")
	require.Equal(t, 2, h.d.Snapshot().Ledger.Provisioning)

	// The first job writes: its slot frees, a third job starts.
	first := ids[0]
	spec, ok := launched.get(first)
	if !ok {
		first = ids[1]
		spec, _ = launched.get(first)
	}
	_, err := h.coord.AppendTrace(t.Context(), first, spec.Job.Token, 0, []byte("hello from the job\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return h.fake.Provisioned() == 3 }, 10*time.Second, time.Millisecond)

	// Everybody writes and finishes.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		done := 0
		for _, id := range ids {
			j, _ := h.gl.Job(id)
			if final(j) {
				done++
				continue
			}
			if _, ok := launched.get(id); ok {
				_ = h.gl.SimulateRun(id, "working\n", gitlabfake.StateSuccess)
			}
		}
		if done == len(ids) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("jobs did not finish")
		case <-time.After(time.Millisecond):
		}
	}
	h.waitIdle(10 * time.Second)
	h.mu.Lock()
	require.LessOrEqual(t, h.maxProv, 2)
	h.mu.Unlock()
	h.requireInvariants()
}

// countingCoordinator records when each job token was used.
type countingCoordinator struct {
	Coordinator
	mu    sync.Mutex
	calls map[string][]time.Time
}

func (c *countingCoordinator) JobStatus(ctx context.Context, tok config.Secret) (coordinator.JobState, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string][]time.Time{}
	}
	c.calls[tok.Reveal()] = append(c.calls[tok.Reveal()], time.Now())
	c.mu.Unlock()
	return c.Coordinator.JobStatus(ctx, tok)
}

func TestFinishChecksCostAtMostTwoRequestsPerMinute(t *testing.T) {
	// Default intervals (check_interval 3 s, job_progress_poll_interval
	// 30 s) at 1 ms per second: a simulated minute is 60 ms.
	var launched launchedJobs
	h := newHarness(t, harnessOpts{innerRunner: func(h *harness, s executors.JobSpec) { launched.add(s) }})
	cc := &countingCoordinator{Coordinator: h.coord}
	h.d.runners[h.runner.ShortID()].coord = cc
	id := h.enqueue("")
	h.start()
	require.Eventually(t, func() bool { return launched.count() == 1 }, 10*time.Second, time.Millisecond)
	spec, _ := launched.get(id)
	tok := spec.Job.Token.Reveal()
	minute := time.Duration(60 * scaled * float64(time.Second))
	start := time.Now()
	// Run the job for 6 simulated minutes.
	require.Eventually(t, func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		calls := cc.calls[tok]
		return len(calls) > 0 && calls[len(calls)-1].Sub(start) > 6*minute
	}, 30*time.Second, time.Millisecond)
	require.NoError(t, h.gl.SimulateRun(id, "done\n", gitlabfake.StateSuccess))
	h.waitIdle(10 * time.Second)

	cc.mu.Lock()
	calls := cc.calls[tok]
	cc.mu.Unlock()
	var late []time.Time
	for _, c := range calls {
		if c.Sub(start) >= minute {
			late = append(late, c)
		}
	}
	require.GreaterOrEqual(t, len(late), 3)
	for i := 1; i < len(late); i++ {
		gap := late[i].Sub(late[i-1])
		require.GreaterOrEqual(t, gap, minute/2, "after a minute, finish checks are ≥ 30 s apart (≤ 2 per minute)")
	}
	// The fake counted the same requests: nothing else used the job token.
	n := 0
	for _, r := range h.gl.Recorded("/job") {
		if r.Header.Get("JOB-TOKEN") == tok {
			n++
		}
	}
	require.Equal(t, len(calls), n)
	h.requireInvariants()
}

// provisionTimes records when Provision was called.
type provisionTimes struct {
	*executortest.Fake
	mu    sync.Mutex
	times []time.Time
}

func (p *provisionTimes) Provision(ctx context.Context, s executors.JobSpec) (executors.Resource, error) {
	p.mu.Lock()
	p.times = append(p.times, time.Now())
	p.mu.Unlock()
	return p.Fake.Provision(ctx, s)
}

func TestLaunchesAreSpaced(t *testing.T) {
	const spacing = 30 * time.Millisecond
	h := newHarness(t, harnessOpts{refJobs: 10, mutate: func(c *config.Config) {
		c.PaasMinSecondsBetweenLaunches = config.Seconds(spacing.Seconds())
	}})
	pt := &provisionTimes{Fake: h.fake}
	h.d.runners[h.runner.ShortID()].exec = pt
	var ids []int64
	for range 4 {
		ids = append(ids, h.enqueue("XS"))
	}
	h.start()
	h.waitJobs(ids, 20*time.Second, final)
	pt.mu.Lock()
	defer pt.mu.Unlock()
	require.Len(t, pt.times, 4)
	// Each launch starts no earlier than its planned time, planned times
	// are spacing apart, and the first starts as soon as it is planned
	// (half a spacing of slack for that).
	span := pt.times[3].Sub(pt.times[0])
	require.GreaterOrEqual(t, span, 3*spacing-spacing/2, "4 launches spaced by %v", spacing)
}
