package clever_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/dispatcher"
	"gitlab.com/paas-runner/paas-runner/executors"
	cleverexec "gitlab.com/paas-runner/paas-runner/executors/clever"
	"gitlab.com/paas-runner/paas-runner/state"
)

// scaled is the time scale of these tests: 1 configured second = 1 ms.
const scaled = 0.001

// daemon is the real dispatcher driving the clever executor against
// gitlabfake and clevertest.
type daemon struct {
	*env
	gl    *gitlabfake.Server
	coord *coordinator.Client
	d     *dispatcher.Dispatcher
}

func newDaemon(t *testing.T, mutRunner func(*config.Runner)) *daemon {
	t.Helper()
	gl := gitlabfake.New(gitlabfake.Options{Seed: 4}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(runnerToken)
	coord := coordinator.New(gl.URL(), runnerToken, coordinator.Options{
		Timeout: 5 * time.Second, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	})
	e := newEnv(t, func(r *config.Runner) {
		r.URL = gl.URL()
		if mutRunner != nil {
			mutRunner(r)
		}
	}, func(o *cleverexec.Options) { o.Groups = coord })
	// The inner runner: once the job is pushed, it runs and succeeds.
	e.fake.OnPush(func(_, name string) {
		id, err := strconv.ParseInt(name[strings.LastIndexByte(name, '-')+1:], 10, 64)
		if err == nil {
			_ = gl.SimulateRun(id, "Running on Clever Cloud\n", gitlabfake.StateSuccess)
		}
	})
	cfg := config.Default()
	cfg.Concurrent = 20
	cfg.PaasMaxConcurrentProvisioning = 8
	cfg.CheckInterval = 3 * scaled
	cfg.JobProgressPollInterval = 30 * scaled
	cfg.ReconcileInterval = 300 * scaled
	cfg.ShutdownTimeout = 5
	e.runner.Name = "clever-runner"
	cfg.QuotaComputation = &config.QuotaComputation{ReferenceRunner: e.runner.Name, ReferenceFlavor: "2XL", ReferenceJobsCount: 4}
	cfg.Runners = []config.Runner{*e.runner}
	d, err := dispatcher.New(cfg, dispatcher.Options{
		Logger:       e.logger,
		Store:        state.NewMemory(),
		Executors:    map[string]executors.Executor{e.runner.ShortID(): e.exec},
		Coordinators: map[string]dispatcher.Coordinator{e.runner.ShortID(): coord},
		Tuning:       dispatcher.Tuning{MaxBackoff: 50 * time.Millisecond, ProvisionTimeout: 10 * time.Second, CallTimeout: 10 * time.Second},
	})
	require.NoError(t, err)
	return &daemon{env: e, gl: gl, coord: coord, d: d}
}

func (dm *daemon) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- dm.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("dispatcher did not stop within 20s")
		}
	})
	select {
	case <-dm.d.Ready():
	case err := <-done:
		t.Fatalf("dispatcher stopped at start: %v", err)
	}
}

// waitFinal waits until every job is final on gitlabfake and no app is
// left on clevertest.
func (dm *daemon) waitFinal(t *testing.T, ids []int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, id := range ids {
		j, err := dm.gl.WaitJob(ctx, id, func(j gitlabfake.Job) bool {
			return j.State == gitlabfake.StateSuccess || j.State == gitlabfake.StateFailed
		})
		require.NoError(t, err, "job %d: last seen %+v", id, j)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(dm.fake.Live()) > 0 || len(dm.d.Snapshot().Jobs) > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("apps left: %d, tracked jobs: %d", len(dm.fake.Live()), len(dm.d.Snapshot().Jobs))
		case <-tick.C:
		}
	}
}

func TestDispatcherEndToEnd(t *testing.T) {
	dm := newDaemon(t, nil)
	flavors := []string{"", "XS", "S", "M", "L", "XL", "2XL"}
	want := map[int64]e2eJob{}
	var ids []int64
	for i := range 50 {
		j := e2eJob{flavor: flavors[i%len(flavors)], proxy: i%4 == 1}
		id := dm.gl.Enqueue(j.spec()).ID
		want[id] = j
		ids = append(ids, id)
	}
	dm.run(t)
	dm.waitFinal(t, ids)

	apps := dm.fake.Apps()
	require.Len(t, apps, 50)
	for _, app := range apps {
		id, err := strconv.ParseInt(app.Name[strings.LastIndexByte(app.Name, '-')+1:], 10, 64)
		require.NoError(t, err)
		j := want[id]
		flavor := j.flavor
		if flavor == "" {
			flavor = "M"
		}
		require.Equal(t, executors.ResourceName(dm.runner, id), app.Name)
		require.Equal(t, "heptapod-runner-"+flavor, app.Create["minFlavor"])
		require.Equal(t, "heptapod-runner-"+flavor, app.Create["maxFlavor"])
		require.Equal(t, "par", app.Create["zone"])
		require.Equal(t, "TASK", app.Create["instanceLifetime"])
		require.Equal(t, map[string]string{"CC_MOUNT_DOCKER_SOCKET": "true", "CC_ENABLE_HEPTAPOD_RUNNER": "true", "A_EXTRA": "1"}, app.Env)
		require.True(t, app.Deleted)
		files, ok := dm.fake.Pushed(app.ID)
		require.True(t, ok)
		assertRunnerTOML(t, files["runner.toml"])
		gj, _ := dm.gl.Job(id)
		require.Equal(t, gitlabfake.StateSuccess, gj.State)
		job, err := coordinator.ParseJob(gj.Payload)
		require.NoError(t, err)
		assertJobJSON(t, job, j.proxy, files["job.json"])
		for name, data := range files {
			requireNoSecrets(t, "pushed "+name, string(data), tokenA, tokenB)
		}
	}
	requireNoSecrets(t, "logs", dm.logText(t), tokenA, tokenB, runnerToken)
}

func TestDispatcherLaunchFailures(t *testing.T) {
	tests := []struct {
		name   string
		runner func(*config.Runner)
		inject func(*daemon)
		trace  string
	}{
		{
			"repo never ready", func(r *config.Runner) { r.CCDeploymentRepoTimeout = 0.05 },
			func(dm *daemon) { dm.fake.SetRepoReadyAfter(-1) }, "was not ready after",
		},
		{"push rejected", nil, func(dm *daemon) { dm.fake.RejectPushes(true) }, "could not push"},
		{"env failure", nil, func(dm *daemon) { dm.fake.FailNext("env", 400) }, "could not configure"},
		{"group without attributes", func(r *config.Runner) {
			r.CCMultiTenant = true
			r.CCGitlabNamespaceAttributesToken = gitlabfake.DefaultAdminToken
		}, func(dm *daemon) { dm.gl.AddGroup(9, "acme", map[string]string{"cc_orga_id": orgaA}) }, "has no custom attribute cc_orga_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dm := newDaemon(t, tc.runner)
			tc.inject(dm)
			id := dm.gl.Enqueue(gitlabfake.JobSpec{RunnerToken: runnerToken}).ID
			dm.run(t)
			dm.waitFinal(t, []int64{id})
			gj, _ := dm.gl.Job(id)
			require.Equal(t, gitlabfake.StateFailed, gj.State)
			require.Equal(t, string(coordinator.RunnerSystemFailure), gj.FailureReason)
			require.Contains(t, string(gj.Trace), tc.trace, "the job log says why")
			requireNoSecrets(t, "job log", string(gj.Trace), tokenA, tokenB, runnerToken)
			require.Empty(t, dm.fake.Live(), "the app was deleted")
		})
	}
}
