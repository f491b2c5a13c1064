package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

// requestsOf counts the POST /jobs/request the fake coordinator received
// with a runner token.
func (w *world) requestsOf(token string) int {
	n := 0
	for _, rec := range w.gl.Recorded("/jobs/request") {
		var body struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(rec.Body, &body) == nil && body.Token == token {
			n++
		}
	}
	return n
}

// SIGHUP reload (issue 11 acceptance): with jobs in flight, a broken
// configuration is rejected with every problem logged and the daemon keeps
// running with the old one; a fixed configuration adding a second runner is
// applied: the new runner is polled and gets jobs, the tracked jobs are kept.
func TestSIGHUPReload(t *testing.T) {
	const running = 5
	w := newWorld(t)
	w.gl.AddRunner(secondToken)
	// Jobs keep running until the test ends them.
	w.setRunFor(func(int64) time.Duration { return time.Hour })
	s := defaultSettings()
	good := w.configTOML(s)
	w.writeConfig(t, good)
	ids := w.enqueue(running, runnerToken)
	p := w.start(t)
	require.True(t, waitFor(t.Context(), time.Minute, func() bool { return w.pushCount() >= running }),
		"jobs did not start: %d pushed", w.pushCount())
	require.True(t, waitFor(t.Context(), 10*time.Second, func() bool { return w.trackedJobs(t) == running }))

	// A broken configuration: three problems.
	broken := strings.Replace(good, "concurrent = 20", "concurrent = -3", 1)
	broken = strings.Replace(broken, "check_interval = 0.02", "check_interval = -1", 1)
	broken = strings.Replace(broken, `executor = "clever-docker"`, `executor = "no-such-executor"`, 1)
	require.NotEqual(t, good, broken)
	w.writeConfig(t, broken)
	before := len(w.logText(t))
	p.signal(t, syscall.SIGHUP)
	var rejected string
	require.True(t, waitFor(t.Context(), 30*time.Second, func() bool {
		rejected = w.logText(t)[before:]
		return strings.Contains(rejected, "configuration rejected")
	}), "no rejection logged after SIGHUP:\n%s", rejected)
	t.Logf("rejection logged:\n%s", rejected)
	for _, key := range []string{"concurrent", "check_interval", "executor"} {
		require.Contains(t, rejected, key, "the rejection does not name the problem with %s", key)
	}
	require.False(t, p.exited(), "the daemon died on a broken configuration")
	// Still working with the old configuration: a new job runs.
	more := w.enqueue(1, runnerToken)
	_, err := w.gl.WaitJob(t.Context(), more[0], func(j gitlabfake.Job) bool { return j.State == gitlabfake.StateRunning })
	require.NoError(t, err)
	require.True(t, waitFor(t.Context(), time.Minute, func() bool { return w.pushCount() >= running+1 }))
	ids = append(ids, more...)
	require.Zero(t, w.requestsOf(secondToken))

	// A fixed configuration adding a second runner.
	s.secondRunner = true
	w.writeConfig(t, w.configTOML(s))
	before = len(w.logText(t))
	p.signal(t, syscall.SIGHUP)
	require.True(t, waitFor(t.Context(), 30*time.Second, func() bool { return w.requestsOf(secondToken) > 0 }),
		"the added runner is not polled; log since SIGHUP:\n%s", w.logText(t)[before:])
	require.Contains(t, w.logText(t)[before:], "configuration applied")
	require.False(t, p.exited())
	// The tracked jobs are kept: still running, still in the state file,
	// their applications still there.
	for _, id := range ids {
		j, _ := w.gl.Job(id)
		require.Equal(t, gitlabfake.StateRunning, j.State, "job %d", id)
	}
	require.Len(t, w.cc.Live(), running+1)
	require.True(t, waitFor(t.Context(), 10*time.Second, func() bool { return w.trackedJobs(t) == running+1 }))
	// The new runner takes a job of its own, still running when the
	// runner is removed again.
	second := w.enqueue(1, secondToken)
	_, err = w.gl.WaitJob(t.Context(), second[0], func(j gitlabfake.Job) bool { return j.State == gitlabfake.StateRunning })
	require.NoError(t, err)
	require.True(t, waitFor(t.Context(), time.Minute, func() bool { return w.pushCount() >= running+2 }))
	require.Len(t, w.cc.Live(), running+2)

	// Removing the second runner: it is no longer polled, but its
	// running job is still watched and, once finished, decommissioned.
	s.secondRunner = false
	w.writeConfig(t, w.configTOML(s))
	before = len(w.logText(t))
	p.signal(t, syscall.SIGHUP)
	require.True(t, waitFor(t.Context(), 30*time.Second, func() bool {
		return strings.Contains(w.logText(t)[before:], "configuration applied")
	}))
	w.setRunFor(nil)
	require.NoError(t, w.gl.SimulateRun(second[0], "done\n", gitlabfake.StateSuccess))
	require.True(t, waitFor(t.Context(), time.Minute, func() bool {
		app := w.appOf(second[0])
		return app != nil && app.Deleted
	}), "the removed runner's job was not decommissioned")
	// The removed runner is no longer polled: no request with its token
	// during 15 check intervals.
	polled := w.requestsOf(secondToken)
	wait(t.Context(), 15*time.Duration(s.checkInterval*float64(time.Second)))
	require.Equal(t, polled, w.requestsOf(secondToken), "the removed runner is still polled")

	// The inner runners finish the old jobs; everything drains.
	for _, id := range ids {
		require.NoError(t, w.gl.SimulateRun(id, "done\n", gitlabfake.StateSuccess))
	}
	ids = append(ids, second...)
	require.True(t, waitFor(t.Context(), time.Minute, func() bool { return w.allFinal(ids) && len(w.cc.Live()) == 0 }))
	require.True(t, waitFor(t.Context(), 10*time.Second, func() bool { return w.trackedJobs(t) == 0 }))
	p.signal(t, syscall.SIGTERM)
	require.True(t, p.wait(time.Minute))
	require.True(t, p.cmd.ProcessState.Success(), "exit status: %v", p.err)
	r := w.outcome(t, "SIGHUP reload", ids)
	require.Equal(t, len(ids), r.succeeded)
	r.requirePass(t)
}
