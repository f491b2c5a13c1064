package localprocess

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
)

func testRunner(t *testing.T) *config.Runner {
	r := config.DefaultRunner()
	r.Name = "local"
	r.URL = "http://127.0.0.1:1"
	r.Token = "glrt-local-process-test"
	r.Executor = config.ExecutorLocalProcess
	r.WorkRoot = t.TempDir()
	return &r
}

func quietDeps() executors.Deps {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return executors.Deps{Logger: l}
}

// sleeper stands in for the agent: it runs until killed.
var sleeper = []string{"/bin/sh", "-c", "sleep 30; exit 0"}

func TestContract(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		r := testRunner(t)
		e, err := New(r, quietDeps(), Options{Command: sleeper, KillGrace: time.Second})
		require.NoError(t, err)
		return executortest.Harness{
			Executor: e,
			Runner:   r,
			NewSpec:  executortest.NewSpecFunc(r),
			Kill: func(t *testing.T, res executors.Resource) {
				pid := res.(*resource).pid
				require.NoError(t, syscall.Kill(-pid, syscall.SIGKILL))
			},
			Foreign: func(t *testing.T) string {
				name := "someone-else-1"
				require.NoError(t, os.MkdirAll(filepath.Join(r.WorkRoot, name), 0o700))
				return name
			},
			Timeout: 20 * time.Second,
		}
	})
}

func TestLifecycle(t *testing.T) {
	tests := []struct {
		name     string
		command  []string
		wantCode int
	}{
		{name: "exit 0", command: []string{"/bin/sh", "-c", "echo ran > ran; exit 0"}, wantCode: 0},
		{name: "exit 3", command: []string{"/bin/sh", "-c", "exit 3"}, wantCode: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRunner(t)
			e, err := New(r, quietDeps(), Options{Command: tc.command})
			require.NoError(t, err)
			spec := executortest.NewSpecFunc(r)(t)
			res, err := e.Provision(t.Context(), spec)
			require.NoError(t, err)
			dir := res.ID()
			for _, f := range []string{JobFile, ConfigFile} {
				st, err := os.Stat(filepath.Join(dir, f))
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
			}
			st, err := os.Stat(dir)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
			toml, err := os.ReadFile(filepath.Join(dir, ConfigFile))
			require.NoError(t, err)
			require.NotContains(t, string(toml), r.Token.Reveal(), "runner token written for the agent")

			res, err = e.Launch(t.Context(), res, spec)
			require.NoError(t, err)
			require.True(t, res.Launched())
			cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(res.(*resource).pid) + "/cmdline")
			if err == nil {
				require.NotContains(t, string(cmdline), spec.Job.Token.Reveal(), "job token in argv")
			}
			var status executors.Status
			require.Eventually(t, func() bool {
				status, err = e.Check(t.Context(), res)
				require.NoError(t, err)
				return status.Liveness == executors.Exited
			}, 10*time.Second, 10*time.Millisecond)
			require.Equal(t, tc.wantCode, status.ExitCode)

			raw, err := e.Dump(res)
			require.NoError(t, err)
			var d map[string]any
			require.NoError(t, json.Unmarshal(raw, &d))
			require.Equal(t, res.Name(), d["name"])
			back, err := e.Restore(t.Context(), raw)
			require.NoError(t, err)
			require.Equal(t, res, back)

			require.NoError(t, e.Decommission(t.Context(), res))
			require.NoError(t, e.Decommission(t.Context(), res))
			_, err = os.Stat(dir)
			require.ErrorIs(t, err, os.ErrNotExist)
			status, err = e.Check(t.Context(), res)
			require.NoError(t, err)
			require.Equal(t, executors.Gone, status.Liveness)
		})
	}
}

func TestWeights(t *testing.T) {
	flavored := func(r *config.Runner) {
		r.LocalFlavors = map[string]config.Flavor{"XS": {MemoryMiB: 512}, "S": {MemoryMiB: 1024}, "L": {MemoryMiB: 8192}}
		r.LocalDefaultFlavor = "S"
	}
	tests := []struct {
		name    string
		setup   func(*config.Runner)
		flavor  string
		want    float64
		wantErr bool
	}{
		{name: "no flavors: weight 1", want: 1},
		{name: "no flavors: M", flavor: "M", want: 1},
		{name: "no flavors: unknown", flavor: "XXL", wantErr: true},
		{name: "default flavor", setup: flavored, want: 1},
		{name: "requested flavor", setup: flavored, flavor: "L", want: 8 * 1.681792830507429},
		{name: "invalid flavor", setup: flavored, flavor: "XXL", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRunner(t)
			if tc.setup != nil {
				tc.setup(r)
			}
			e, err := New(r, quietDeps(), Options{})
			require.NoError(t, err)
			var vars []coordinator.Variable
			if tc.flavor != "" {
				vars = append(vars, coordinator.Variable{Key: "CI_CLEVER_CLOUD_FLAVOR", Value: tc.flavor})
			}
			job, err := executortest.NewJob(1, vars...)
			require.NoError(t, err)
			w, err := e.ExpectedWeight(t.Context(), job)
			if tc.wantErr {
				var je *executors.JobError
				require.ErrorAs(t, err, &je)
				require.Contains(t, je.Public, "XXL")
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, w, 1e-9)
		})
	}
}

func TestAdoptAndList(t *testing.T) {
	r := testRunner(t)
	e, err := New(r, quietDeps(), Options{Command: sleeper, KillGrace: time.Second})
	require.NoError(t, err)
	spec := executortest.NewSpecFunc(r)(t)
	res, err := e.Provision(t.Context(), spec)
	require.NoError(t, err)
	res, err = e.Launch(t.Context(), res, spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Decommission(t.Context(), res) })

	// A restarted daemon: a new executor on the same root.
	e2, err := New(r, quietDeps(), Options{Command: sleeper})
	require.NoError(t, err)
	listed, err := e2.List(t.Context())
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Equal(t, spec.ResourceName, listed[0].Name)
	adopted, err := e2.Adopt(t.Context(), spec.ResourceName, spec.Job)
	require.NoError(t, err)
	require.True(t, adopted.Launched())
	st, err := e2.Check(t.Context(), adopted)
	require.NoError(t, err)
	require.Equal(t, executors.Alive, st.Liveness)
	none, err := e2.Adopt(t.Context(), spec.ResourceName+"0", nil)
	require.NoError(t, err)
	require.Nil(t, none)
	require.NoError(t, e2.Decommission(t.Context(), adopted))
	require.NotContains(t, mustNames(t, e2), spec.ResourceName)
}

func mustNames(t *testing.T, e *Executor) []string {
	l, err := e.List(t.Context())
	require.NoError(t, err)
	var out []string
	for _, x := range l {
		out = append(out, x.Name)
	}
	return out
}
