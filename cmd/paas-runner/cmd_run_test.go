package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	_ "gitlab.com/paas-runner/paas-runner/executors/executortest" // executor kind "fake"
	"gitlab.com/paas-runner/paas-runner/state"
)

// runDaemon runs `paas-runner run` in process until ctx ends and returns
// its stderr and exit code.
func runDaemon(ctx context.Context, args ...string) (string, int) {
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.RunContext(ctx, append([]string{"paas-runner", "run"}, args...))
	if err == nil {
		return errOut.String(), 0
	}
	if ec, ok := errors.AsType[cli.ExitCoder](err); ok {
		return errOut.String() + ec.Error(), ec.ExitCode()
	}
	return errOut.String() + err.Error(), 1
}

func TestRunRejectsBadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte(`
concurrent = 0
[[runners]]
  name = "r"
  url = "https://gitlab.example.com"
  token = "runRunnerTokenValue"
  executor = "clever-docker"
`), 0o600))
	errOut, code := runDaemon(t.Context(), bad)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "concurrent")
	require.Contains(t, errOut, "quota_computation")
	require.NotContains(t, errOut, "runRunnerTokenValue")

	_, code = runDaemon(t.Context())
	require.Equal(t, 2, code, "CONFIG is required")
}

func TestRunDaemonAcquiresPersistsAndStopsGracefully(t *testing.T) {
	config.AllowFakeExecutor = true
	t.Cleanup(func() { config.AllowFakeExecutor = false })
	gl := gitlabfake.New(gitlabfake.Options{}).Start()
	t.Cleanup(gl.Close)
	const token = "glrt-run-command-test-token"
	gl.AddRunner(token)
	job := gl.Enqueue(gitlabfake.JobSpec{RunnerToken: token})

	dir := t.TempDir()
	stateFile := filepath.Join(dir, "state.json")
	cfgFile := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
concurrent = 4
check_interval = 0.01
job_progress_poll_interval = 0.05
shutdown_timeout = 5
state_file = %q
[quota_computation]
  reference_runner = "r"
  reference_flavor = "M"
  reference_jobs_count = 4
[[runners]]
  name = "r"
  url = %q
  token = %q
  executor = "fake"
`, stateFile, gl.URL(), token)), 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		errOut string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		e, c := runDaemon(ctx, cfgFile)
		done <- result{e, c}
	}()
	_, err := gl.WaitJob(t.Context(), job.ID, func(j gitlabfake.Job) bool { return j.State == gitlabfake.StateRunning })
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		f, _, err := state.ReadFile(stateFile, nil)
		return err == nil && len(f.Jobs) == 1 && f.Jobs[0].Phase == state.PhaseRunning
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case r := <-done:
		require.Equal(t, 0, r.code, r.errOut)
	case <-time.After(20 * time.Second):
		t.Fatal("paas-runner run did not stop")
	}
	fi, err := os.Stat(stateFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	raw, err := os.ReadFile(stateFile)
	require.NoError(t, err)
	require.NotContains(t, string(raw), token, "no runner token in the state file")
	require.Contains(t, string(raw), fmt.Sprint(job.ID))
}
