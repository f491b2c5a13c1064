package clever_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/quota"
)

const proxyPrefix = "gitlab.example:443/acme/dependency_proxy/containers"

// e2eJob is what a job asked for.
type e2eJob struct {
	flavor string // "" = default
	proxy  bool
}

// spec is the job to enqueue on gitlabfake: the flavor variable when set,
// and with proxy an image and services under the dependency proxy.
func (j e2eJob) spec() gitlabfake.JobSpec {
	spec := gitlabfake.JobSpec{RunnerToken: runnerToken, Variables: map[string]string{}}
	if j.flavor != "" {
		spec.Variables[quota.FlavorVariable] = j.flavor
	}
	if j.proxy {
		spec.Variables[deploy.DependencyProxyVariable] = proxyPrefix
		spec.Image = "debian:bookworm"
		spec.Services = []gitlabfake.Service{{Name: "postgres:16"}, {Name: "registry.example.com/tools/redis:7", Alias: "cache"}}
	}
	return spec
}

// runJob drives one acquired job through the executor as the dispatcher
// would: weigh, provision, launch, let the coordinator see it finish, then
// decommission.
func runJob(ctx context.Context, e *env, gl *gitlabfake.Server, coord *coordinator.Client, job *coordinator.Job) error {
	// Two-phase job commit: the job is ours once accepted.
	if err := coord.AcceptJob(ctx, job.ID, job.Token); err != nil {
		return fmt.Errorf("job %d: accept: %w", job.ID, err)
	}
	w, err := e.exec.ExpectedWeight(ctx, job)
	if err != nil {
		return fmt.Errorf("job %d: expected weight: %w", job.ID, err)
	}
	spec := executors.JobSpec{Job: job, ResourceName: executors.ResourceName(e.runner, job.ID)}
	res, err := e.exec.Provision(ctx, spec)
	if err != nil {
		return fmt.Errorf("job %d: provision: %w", job.ID, err)
	}
	if res.Weight() != w {
		return fmt.Errorf("job %d: weight %g, expected %g", job.ID, res.Weight(), w)
	}
	if res, err = e.exec.Launch(ctx, res, spec); err != nil {
		return fmt.Errorf("job %d: launch: %w", job.ID, err)
	}
	if st, err := e.exec.Check(ctx, res); err != nil || st.Liveness != executors.Alive {
		return fmt.Errorf("job %d: check %v: %w", job.ID, st, err)
	}
	// The inner runner runs the job and reports to the coordinator.
	if err := gl.SimulateRun(job.ID, "Job succeeded\n", gitlabfake.StateSuccess); err != nil {
		return err
	}
	st, err := coord.JobStatus(ctx, job.Token)
	if err != nil || !st.Finished {
		return fmt.Errorf("job %d: status %+v: %w", job.ID, st, err)
	}
	if err := e.exec.Decommission(ctx, res); err != nil {
		return fmt.Errorf("job %d: decommission: %w", job.ID, err)
	}
	return nil
}

func TestEndToEnd50Jobs(t *testing.T) {
	gl := gitlabfake.New(gitlabfake.Options{Seed: 1}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(runnerToken)
	e := newEnv(t, func(r *config.Runner) { r.URL = gl.URL() }, nil)
	coord := coordinator.New(gl.URL(), runnerToken, coordinator.Options{})

	flavors := []string{"", "XS", "S", "M", "L", "XL", "2XL"}
	want := map[int64]e2eJob{}
	for i := range 50 {
		j := e2eJob{flavor: flavors[i%len(flavors)], proxy: i%3 == 0}
		want[gl.Enqueue(j.spec()).ID] = j
	}

	jobs := make(chan *coordinator.Job)
	errs := make(chan error, 50)
	raws := sync.Map{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for job := range jobs {
				if err := runJob(t.Context(), e, gl, coord, job); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 50 {
		job, err := coord.RequestJob(t.Context())
		require.NoError(t, err)
		require.NotNil(t, job)
		raws.Store(job.ID, job)
		jobs <- job
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	apps := e.fake.Apps()
	require.Len(t, apps, 50, "one app per job")
	require.Empty(t, e.fake.Live(), "every app deleted after its job")
	for _, app := range apps {
		var jobID int64
		_, err := fmt.Sscanf(app.Name[strings.LastIndexByte(app.Name, '-')+1:], "%d", &jobID)
		require.NoError(t, err)
		j, ok := want[jobID]
		require.True(t, ok, "app %s for an unknown job", app.Name)
		flavor := j.flavor
		if flavor == "" {
			flavor = e.runner.CCDefaultFlavor
		}
		require.Equal(t, map[string]any{
			"name": executors.ResourceName(e.runner, jobID), "zone": "par", "deploy": "git",
			"instanceType": "docker", "instanceVersion": "20260101",
			"instanceVariant": e.runner.CCInstanceVariantUUID, "instanceLifetime": "TASK",
			"minInstances": 1.0, "maxInstances": 1.0,
			"minFlavor": "heptapod-runner-" + flavor, "maxFlavor": "heptapod-runner-" + flavor,
		}, app.Create)
		require.Equal(t, orgaA, app.Orga)
		require.Equal(t, map[string]string{"CC_MOUNT_DOCKER_SOCKET": "true", "CC_ENABLE_HEPTAPOD_RUNNER": "true", "A_EXTRA": "1"}, app.Env)
		require.True(t, strings.HasPrefix(string(app.EnvRaw), `{"CC_MOUNT_DOCKER_SOCKET":"true"`))
		require.True(t, app.Deleted)
		require.Equal(t, 1, app.Pushes)

		files, ok := e.fake.Pushed(app.ID)
		require.True(t, ok)
		require.Equal(t, deploy.HeptapodDockerfile(e.runner.HeptapodRunnerMainImage), string(files["Dockerfile"]))
		assertRunnerTOML(t, files["runner.toml"])
		v, _ := raws.Load(jobID)
		assertJobJSON(t, v.(*coordinator.Job), j.proxy, files["job.json"])
		for name, data := range files {
			requireNoSecrets(t, "pushed "+name, string(data), tokenA, tokenB)
		}
		gj, _ := gl.Job(jobID)
		require.Equal(t, gitlabfake.StateSuccess, gj.State)
	}
}

func assertRunnerTOML(t *testing.T, data []byte) {
	t.Helper()
	var doc struct {
		Runners []map[string]any `toml:"runners"`
	}
	require.NoError(t, toml.Unmarshal(data, &doc))
	require.Len(t, doc.Runners, 1)
	for k := range doc.Runners[0] {
		require.False(t, strings.HasPrefix(k, "cc_"), "runner.toml forwards %s", k)
	}
	require.Equal(t, "docker", doc.Runners[0]["executor"])
	require.NotContains(t, doc.Runners[0], "heptapod_runner_main_image")
}

func assertJobJSON(t *testing.T, job *coordinator.Job, proxy bool, data []byte) {
	t.Helper()
	if !proxy {
		require.Equal(t, string(job.Raw), string(data), "job.json is the payload as received")
		return
	}
	var got struct {
		ID       int64                          `json:"id"`
		Image    struct{ Name string }          `json:"image"`
		Services []struct{ Name, Alias string } `json:"services"`
	}
	require.NoError(t, json.Unmarshal(data, &got))
	require.Equal(t, job.ID, got.ID)
	require.Equal(t, proxyPrefix+"/library/debian:bookworm", got.Image.Name)
	require.Len(t, got.Services, 2)
	require.Equal(t, proxyPrefix+"/library/postgres:16", got.Services[0].Name)
	require.Equal(t, "postgres", got.Services[0].Alias)
	require.Equal(t, "registry.example.com/tools/redis:7", got.Services[1].Name, "non Docker Hub images are untouched")
	require.Equal(t, "cache", got.Services[1].Alias)
}
