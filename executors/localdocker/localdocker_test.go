package localdocker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/localdocker"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// newRunner returns a local-docker runner section whose jobs report to url
// and run on innerImage.
func newRunner(url, innerImage string) *config.Runner {
	r := config.DefaultRunner()
	suffix := dockertest.RandomSuffix()
	r.Name = "ld-" + suffix
	r.URL = url
	r.Token = config.Secret("glrt-localdocker-test-" + suffix)
	r.Executor = config.ExecutorLocalDocker
	r.HeptapodRunnerMainImage = innerImage
	r.LocalDefaultFlavor = config.DefaultLocalDefaultFlavor
	return &r
}

func newExecutor(t *testing.T, r *config.Runner, c *docker.Client) *localdocker.Executor {
	t.Helper()
	e, err := localdocker.New(r, executors.Deps{}, localdocker.Options{Docker: c, NetworkMode: "host"})
	require.NoError(t, err)
	return e
}

func TestRegistered(t *testing.T) {
	r := newRunner("http://127.0.0.1:1", "x")
	e, err := executors.New(r, executors.Deps{})
	require.NoError(t, err)
	require.Equal(t, config.ExecutorLocalDocker, e.Kind())
}

func TestFlavors(t *testing.T) {
	tests := []struct {
		name       string
		flavors    map[string]config.Flavor
		def        string
		requested  string
		wantWeight float64
		wantMax    float64
		wantErr    bool
	}{
		{name: "default table weighs 1", wantWeight: 1, wantMax: 1},
		{name: "default table, explicit M", requested: "M", wantWeight: 1, wantMax: 1},
		{name: "default table, unknown flavor", requested: "XL", wantErr: true},
		{
			name:    "local flavors",
			flavors: map[string]config.Flavor{"S": {MemoryMiB: 1024, CPUs: 1}, "L": {MemoryMiB: 4096, CPUs: 2}},
			def:     "S", requested: "L",
			wantWeight: quota.Flavor{MemoryMiB: 4096}.Weight(), wantMax: quota.Flavor{MemoryMiB: 4096}.Weight(),
		},
		{
			name:    "local flavors, default",
			flavors: map[string]config.Flavor{"S": {MemoryMiB: 2048, CPUs: 1}, "L": {MemoryMiB: 4096, CPUs: 2}},
			def:     "S", wantWeight: quota.Flavor{MemoryMiB: 2048}.Weight(), wantMax: quota.Flavor{MemoryMiB: 4096}.Weight(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner("http://127.0.0.1:1", "x")
			r.LocalFlavors = tc.flavors
			if tc.def != "" {
				r.LocalDefaultFlavor = tc.def
			}
			c, err := docker.New("unix:///nonexistent.sock")
			require.NoError(t, err)
			e := newExecutor(t, r, c)
			var vars []coordinator.Variable
			if tc.requested != "" {
				vars = append(vars, coordinator.Variable{Key: quota.FlavorVariable, Value: tc.requested})
			}
			job := &coordinator.Job{ID: 1, Variables: vars}
			w, err := e.ExpectedWeight(t.Context(), job)
			if tc.wantErr {
				je, ok := errors.AsType[*executors.JobError](err)
				require.True(t, ok, "%v", err)
				require.Contains(t, je.Public, tc.requested)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.wantWeight, w, 1e-9)
			maxW, err := e.MaxWeight(t.Context())
			require.NoError(t, err)
			require.InDelta(t, tc.wantMax, maxW, 1e-9)
		})
	}
}

func TestDumpRestore(t *testing.T) {
	c, err := docker.New("unix:///nonexistent.sock")
	require.NoError(t, err)
	e := newExecutor(t, newRunner("http://127.0.0.1:1", "x"), c)
	tests := []struct {
		name         string
		raw          string
		wantName     string
		wantID       string
		wantWeight   float64
		wantLaunched bool
		wantErr      bool
	}{
		{name: "ours", raw: `{"name":"hpd-job-abc-1","container_id":"c0ffee","image":"hpd-job-abc-1","weight":2.5,"launched":true}`, wantName: "hpd-job-abc-1", wantID: "hpd-job-abc-1", wantWeight: 2.5, wantLaunched: true},
		{name: "ours, provisioned only", raw: `{"name":"hpd-job-Abc-2","image":"hpd-job-abc-2","weight":1}`, wantName: "hpd-job-Abc-2", wantID: "hpd-job-abc-2", wantWeight: 1},
		{name: "heptapod bare string", raw: `"hpd-job-abcdefgh-42"`, wantName: "hpd-job-abcdefgh-42", wantID: "hpd-job-abcdefgh-42", wantWeight: 1, wantLaunched: true},
		{name: "missing weight", raw: `{"name":"n"}`, wantName: "n", wantID: "n", wantWeight: 1},
		{name: "empty string", raw: `""`, wantErr: true},
		{name: "no name", raw: `{"image":"x"}`, wantErr: true},
		{name: "garbage", raw: `[1]`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Restore(t.Context(), json.RawMessage(tc.raw))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantName, res.Name())
			require.Equal(t, tc.wantID, res.ID())
			require.InDelta(t, tc.wantWeight, res.Weight(), 1e-9)
			require.Equal(t, tc.wantLaunched, res.Launched())
			again, err := e.Dump(res)
			require.NoError(t, err)
			back, err := e.Restore(t.Context(), again)
			require.NoError(t, err)
			require.Equal(t, res, back)
		})
	}
}

func TestNoDaemon(t *testing.T) {
	c, err := docker.New("unix://" + t.TempDir() + "/none.sock")
	require.NoError(t, err)
	r := newRunner("http://127.0.0.1:1", "x")
	e := newExecutor(t, r, c)
	job := &coordinator.Job{ID: 9, Token: "t", Raw: json.RawMessage(`{"id":9,"token":"t"}`)}
	res, err := e.Provision(context.Background(), executors.JobSpec{Job: job, ResourceName: executors.ResourceName(r, 9)})
	require.Error(t, err)
	require.Nil(t, res)
	_, err = e.List(t.Context())
	require.Error(t, err)
}
