package dispatcher

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/state"
)

// TestGracefulShutdownWithLaunchesInFlight: a stop request waits for the
// launches in flight (never cancelling one), persists, returns; the next
// start adopts every job.
func TestGracefulShutdownWithLaunchesInFlight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	fs, err := state.Open(path, quietLog())
	require.NoError(t, err)
	gl := gitlabfake.New(gitlabfake.Options{Seed: 5}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(testRunnerToken)
	cloud := executortest.NewCloud()
	o := harnessOpts{
		gl: gl, cloud: cloud, store: fs, concurrent: 30, provisioning: 20, refFlavor: "XS", refJobs: 30,
		fake: executortest.Options{MaxFlavor: "XS", Delays: map[executortest.Op]time.Duration{executortest.OpProvision: 1500 * time.Millisecond}},
	}
	h := newHarness(t, o)
	var ids []int64
	for range 20 {
		ids = append(ids, h.enqueue("XS"))
	}
	h.start()
	require.Eventually(t, func() bool { return h.fake.Calls(executortest.OpProvision) == 20 }, 10*time.Second, time.Millisecond)
	require.NoError(t, h.stop())
	require.Equal(t, 20, cloud.Provisioned(h.prefix()), "no provisioning call was cancelled")
	require.Zero(t, cloud.LaunchCount(h.prefix()), "no launch started after the stop request")
	require.NoError(t, fs.Close(t.Context()))

	fs2, err := state.Open(path, quietLog())
	require.NoError(t, err)
	f, err := fs2.Load()
	require.NoError(t, err)
	require.Len(t, f.Jobs, 20)
	for _, j := range f.Jobs {
		require.Equal(t, state.PhaseProvisioned, j.Phase, "job %d", j.JobID)
		require.NotEmpty(t, j.Resource)
	}
	o.store = fs2
	o.fake = executortest.Options{MaxFlavor: "XS"}
	h2 := newHarness(t, o)
	h2.start()
	h2.waitJobs(ids, 20*time.Second, final)
	h2.waitIdle(10 * time.Second)
	require.Equal(t, 20, cloud.Provisioned(h.prefix()), "every job adopted, none provisioned twice")
	require.Zero(t, cloud.Live(""))
	require.NoError(t, h2.stop())
	require.NoError(t, fs2.Close(t.Context()))
}

func TestForcedShutdownReturnsAtOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{
		fake:   executortest.Options{Delays: map[executortest.Op]time.Duration{executortest.OpProvision: time.Minute}},
		tuning: Tuning{ProvisionTimeout: 200 * time.Millisecond},
	})
	h.enqueue("")
	h.start()
	require.Eventually(t, func() bool { return h.fake.Calls(executortest.OpProvision) == 1 }, 10*time.Second, time.Millisecond)
	h.cancel()
	require.Eventually(t, func() bool { return h.d.Snapshot().Stopping }, 10*time.Second, time.Millisecond)
	close(h.force)
	select {
	case err := <-h.done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("forced stop did not return")
	}
	h.done <- nil // for the cleanup's stop
	f, err := h.store.Load()
	require.NoError(t, err)
	require.Len(t, f.Jobs, 1)
	require.Equal(t, state.PhasePending, f.Jobs[0].Phase, "intent persisted; the next start adopts or provisions")
}

// TestRejectedTokenBacksOffOnlyThatRunner: a runner whose token is
// rejected is backed off and logged once; the other keeps working.
func TestRejectedTokenBacksOffOnlyThatRunner(t *testing.T) {
	h := newHarness(t, harnessOpts{extraRunner: func(r *config.Runner) {
		r.Name = "revoked"
		r.Token = "glrt-revoked-token"
	}})
	var ids []int64
	for range 5 {
		ids = append(ids, h.enqueue(""))
	}
	h.start()
	h.waitJobs(ids, 20*time.Second, final)
	require.Eventually(t, func() bool {
		for _, rv := range h.d.Snapshot().Runners {
			if rv.Name == "revoked" {
				return rv.Forbidden && rv.BackoffUntil.After(time.Time{})
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
	// Let it be polled a few times more: logged once only.
	n := h.gl.Requests("/jobs/request")
	require.Eventually(t, func() bool { return h.gl.Requests("/jobs/request") > n+5 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 1, strings.Count(h.logs.String(), "rejected the runner token"))
	h.requireInvariants()
}

// TestNoSecretInLogsOrSnapshot: tokens never reach logs or snapshots.
func TestNoSecretInLogsOrSnapshot(t *testing.T) {
	var tokens []string
	h := newHarness(t, harnessOpts{innerRunner: func(h *harness, s executors.JobSpec) {
		tokens = append(tokens, s.Job.Token.Reveal())
		succeedSoon(h, s)
	}})
	ids := []int64{h.enqueue("HUGE"), h.enqueue("S"), h.enqueue("M")}
	h.start()
	h.waitJobs(ids, 20*time.Second, final)
	h.waitIdle(10 * time.Second)
	snap, err := json.Marshal(h.d.Snapshot())
	require.NoError(t, err)
	logs := h.logs.String()
	for _, j := range h.gl.Jobs() {
		tokens = append(tokens, j.Token)
	}
	tokens = append(tokens, testRunnerToken, gitlabfake.DefaultAdminToken)
	for _, tok := range tokens {
		require.NotContains(t, logs, tok)
		require.NotContains(t, string(snap), tok)
	}
}

func TestStatisticsLineKeys(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.start()
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), `JSON statistics: {\"weight_quota\":2`) }, 10*time.Second, time.Millisecond)
	var st map[string]any
	for line := range strings.SplitSeq(h.logs.String(), "\n") {
		if _, after, ok := strings.Cut(line, "JSON statistics: "); ok && strings.Contains(line, `weight_quota\":2`) {
			raw := strings.TrimSuffix(after, `"`)
			require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(raw, `\"`, `"`)), &st))
			break
		}
	}
	keys := []string{"weight_quota", "current_weight", "weight_headroom", "can_take_job", "max_jobs_in_provisioning", "jobs_in_provisioning", "current_concurrent_jobs", "max_concurrent_jobs"}
	require.Len(t, st, len(keys))
	for _, k := range keys {
		require.Contains(t, st, k)
	}
	require.IsType(t, true, st["can_take_job"])
}

func TestReloadChangesLimitsAndRunners(t *testing.T) {
	h := newHarness(t, harnessOpts{concurrent: 5})
	h.start()
	cfg := *h.cfg
	cfg.Concurrent = 7
	cfg.Runners = nil // the runner is removed: no more polling
	h.d.Reload(&cfg)
	require.Eventually(t, func() bool {
		s := h.d.Snapshot()
		return s.Ledger.MaxJobs == 7 && len(s.Runners) == 1 && s.Runners[0].Removed
	}, 10*time.Second, time.Millisecond, "%+v", h.d.Snapshot())
	n := h.gl.Requests("/jobs/request")
	id := h.enqueue("")
	cycles := h.d.Snapshot().PollCycles
	require.Eventually(t, func() bool { return h.d.Snapshot().PollCycles > cycles+5 }, 10*time.Second, time.Millisecond)
	require.LessOrEqual(t, h.gl.Requests("/jobs/request"), n+1, "a removed runner is not polled")
	j, _ := h.gl.Job(id)
	require.Equal(t, gitlabfake.StatePending, j.State)

	h.d.Reload(h.cfg) // re-added
	h.waitJobs([]int64{id}, 10*time.Second, final)
}
