package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SIGTERM with 20 launches in flight (application creations held in the
// fake PaaS until the test releases them): the runner lets them finish, exits 0 within shutdown_timeout
// with every job in the state file, and the restarted runner adopts every
// one (no second application) and finishes them.
func TestSIGTERMWithLaunchesInFlight(t *testing.T) {
	const inFlight = 20
	const held = time.Second
	w := newWorld(t)
	s := defaultSettings()
	s.concurrent, s.provisioning, s.shutdownTimeout = 2*inFlight, 2*inFlight, 30
	w.writeConfig(t, w.configTOML(s))
	release := w.holdCreates()
	t.Cleanup(release)
	ids := w.enqueue(inFlight, runnerToken)

	p := w.start(t)
	require.True(t, waitFor(t.Context(), time.Minute, func() bool { return w.creates() >= inFlight }),
		"only %d creations in flight", w.creates())
	require.Equal(t, inFlight, w.acquired())
	require.Empty(t, w.cc.Apps(), "creations must still be in flight when SIGTERM is sent")

	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	// The runner must wait for the creations in flight: it is still there
	// while they are held.
	wait(t.Context(), held)
	require.False(t, p.exited(), "the runner exited with creations in flight")
	release()
	require.True(t, p.wait(time.Duration(s.shutdownTimeout)*time.Second+10*time.Second),
		"runner did not exit within shutdown_timeout (%gs)", s.shutdownTimeout)
	elapsed := time.Since(start)
	require.True(t, p.cmd.ProcessState.Success(), "exit status: %v", p.err)
	t.Logf("exited %s after SIGTERM (shutdown_timeout %gs)", elapsed.Round(time.Millisecond), s.shutdownTimeout)
	require.Less(t, elapsed, time.Duration(s.shutdownTimeout)*time.Second+5*time.Second)

	// Every in-flight creation completed (never cancelled mid-request)
	// and every job is in the state file.
	require.Len(t, w.cc.Apps(), inFlight)
	require.Equal(t, inFlight, w.trackedJobs(t))
	for _, id := range ids {
		j, _ := w.gl.Job(id)
		require.False(t, final(j), "job %d is already final before the restart", id)
	}

	p = w.start(t)
	require.True(t, waitFor(t.Context(), 2*time.Minute, func() bool {
		return w.allFinal(ids) && len(w.cc.Live()) == 0
	}), "run did not drain after the restart")
	require.True(t, waitFor(t.Context(), 10*time.Second, func() bool { return w.trackedJobs(t) == 0 }))
	p.signal(t, syscall.SIGTERM)
	require.True(t, p.wait(time.Minute))
	require.True(t, p.cmd.ProcessState.Success(), "exit status: %v", p.err)

	r := w.outcome(t, "SIGTERM with 20 launches in flight", ids)
	require.Equal(t, inFlight, r.succeeded, "every adopted job succeeds")
	require.Len(t, w.cc.Apps(), inFlight, "adoption must not create a second application")
	r.requirePass(t)
}
