package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/state"
)

const (
	stateTestRunnerToken = "glrt-StateTestRunnerToken42"
	stateTestJobToken    = "glcbt-64_StateTestJobToken"
)

// stateFixture is a config with one fake runner, a state file tracking job
// 1 (with a resource) and a cloud holding that resource plus an orphan.
type stateFixture struct {
	cfgPath, statePath string
	cloud              *executortest.Cloud
	runner             *config.Runner
}

func newStateFixture(t *testing.T) *stateFixture {
	t.Helper()
	config.AllowFakeExecutor = true
	t.Cleanup(func() { config.AllowFakeExecutor = false })
	cloud := executortest.NewCloud()
	executors.Register(config.ExecutorFake, executortest.Factory(cloud, executortest.Options{}))
	t.Cleanup(func() {
		executors.Register(config.ExecutorFake, executortest.Factory(executortest.DefaultCloud(), executortest.Options{}))
	})

	dir := t.TempDir()
	fx := &stateFixture{cfgPath: filepath.Join(dir, "config.toml"), statePath: filepath.Join(dir, "state.json"), cloud: cloud}
	cfgText := `concurrent = 4
state_file = "` + fx.statePath + `"

[quota_computation]
  reference_runner = "fake-one"
  reference_flavor = "M"
  reference_jobs_count = 4

[[runners]]
  name = "fake-one"
  url = "https://gitlab.example"
  token = "` + stateTestRunnerToken + `"
  executor = "fake"
`
	require.NoError(t, os.WriteFile(fx.cfgPath, []byte(cfgText), 0o600))
	cfg, err := config.LoadAndValidate(fx.cfgPath)
	require.NoError(t, err)
	fx.runner = &cfg.Runners[0]

	fake := executortest.NewFake(cloud, fx.runner, executortest.Options{})
	provision := func(id int64) executors.Resource {
		res, err := fake.Provision(t.Context(), executors.JobSpec{
			Job:          &coordinator.Job{ID: id, Token: stateTestJobToken},
			ResourceName: executors.ResourceName(fx.runner, id),
		})
		require.NoError(t, err)
		return res
	}
	tracked := provision(1)
	provision(2) // orphan: no job tracks it
	dump, err := fake.Dump(tracked)
	require.NoError(t, err)

	store, err := state.Open(fx.statePath, log)
	require.NoError(t, err)
	store.Put(state.Job{
		Runner: fx.runner.ShortID(), JobID: 1, Token: stateTestJobToken, Flavor: "M",
		ExpectedWeight: 1, Weight: 1, Phase: state.PhaseRunning,
		ResourceName: tracked.Name(), Resource: dump,
		Payload: json.RawMessage(`{"id":1,"token":"` + stateTestJobToken + `"}`),
	})
	require.NoError(t, store.Close(t.Context()))
	return fx
}

// runCLI runs `paas-runner ARGS…` and returns its combined output and the
// error it ended with (nil for exit 0).
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &out
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.RunContext(t.Context(), append([]string{"paas-runner"}, args...))
	return out.String(), err
}

func TestStateShow(t *testing.T) {
	fx := newStateFixture(t)
	tests := map[string]struct {
		args []string
		want []string
	}{
		"table": {[]string{"state", "show", fx.cfgPath}, []string{"fake-one", "running", executors.ResourceName(fx.runner, 1), "1 tracked job(s)"}},
		"json":  {[]string{"state", "show", "--json", fx.cfgPath}, []string{`"runner_label": "fake-one"`, `"token": "[MASKED]"`, `"payload": "[MASKED]"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := runCLI(t, tc.args...)
			require.NoError(t, err)
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			require.NotContains(t, out, stateTestJobToken)
			require.NotContains(t, out, stateTestRunnerToken)
		})
	}
}

func TestStateReconcile(t *testing.T) {
	fx := newStateFixture(t)
	prefix := executors.ResourcePrefix(fx.runner)
	orphan := executors.ResourceName(fx.runner, 2)

	out, err := runCLI(t, "state", "reconcile", "--dry-run", fx.cfgPath)
	require.NoError(t, err)
	require.Contains(t, out, "orphan "+orphan)
	require.Contains(t, out, "would delete")
	require.Equal(t, 2, fx.cloud.Live(prefix), "dry run deletes nothing")

	// A failing deletion is reported and the orphan stays.
	executors.Register(config.ExecutorFake, executortest.Factory(fx.cloud, executortest.Options{
		Failures: map[executortest.Op]executortest.Failure{executortest.OpDecommission: {Rate: 1}},
	}))
	out, err = runCLI(t, "state", "reconcile", fx.cfgPath)
	require.ErrorContains(t, err, "delete orphan "+orphan)
	require.Contains(t, out, "NOT deleted")
	require.Equal(t, 2, fx.cloud.Live(prefix))

	executors.Register(config.ExecutorFake, executortest.Factory(fx.cloud, executortest.Options{}))
	out, err = runCLI(t, "state", "reconcile", fx.cfgPath)
	require.NoError(t, err)
	require.Contains(t, out, "1 orphan(s) deleted")
	require.Equal(t, []string{executors.ResourceName(fx.runner, 1)}, fx.cloud.Names(prefix), "the tracked resource stays")

	unlock, err := state.Lock(fx.statePath)
	require.NoError(t, err)
	defer unlock()
	_, err = runCLI(t, "state", "reconcile", fx.cfgPath)
	require.ErrorContains(t, err, "daemon", "refused while the daemon holds the lock")
	_, err = runCLI(t, "state", "reconcile", "--dry-run", fx.cfgPath)
	require.NoError(t, err, "a dry run needs no lock")
}

func TestStateForget(t *testing.T) {
	fx := newStateFixture(t)
	tests := []struct {
		name    string
		args    []string
		lock    bool
		wantErr string
		want    string
	}{
		{name: "bad id", args: []string{"x"}, wantErr: "invalid JOB_ID"},
		{name: "unknown job", args: []string{"99"}, wantErr: "not tracked"},
		{name: "other runner", args: []string{"--runner", "nope", "1"}, wantErr: "not tracked"},
		{name: "daemon running", args: []string{"1"}, lock: true, wantErr: "daemon"},
		{name: "forgotten", args: []string{"--runner", "fake-one", "1"}, want: "forgot job 1 of runner fake-one"},
		{name: "already forgotten", args: []string{"1"}, wantErr: "not tracked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lock {
				unlock, err := state.Lock(fx.statePath)
				require.NoError(t, err)
				defer unlock()
			}
			args := append([]string{"state", "forget"}, tc.args[:len(tc.args)-1]...)
			args = append(args, fx.cfgPath, tc.args[len(tc.args)-1])
			out, err := runCLI(t, args...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Contains(t, out, tc.want)
		})
	}
	f, _, err := state.ReadFile(fx.statePath, nil)
	require.NoError(t, err)
	require.Empty(t, f.Jobs)
}
