package localdocker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/executors/localdocker"
	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
)

// requireNothingLeft checks that no container or image of runner r
// remains.
func requireNothingLeft(t *testing.T, c *docker.Client, r *config.Runner) {
	t.Helper()
	sel := map[string]string{docker.LabelRunner: r.ShortID()}
	cs, err := c.ListByLabel(t.Context(), sel)
	require.NoError(t, err)
	require.Empty(t, cs, "containers left behind")
	imgs, err := c.ImagesByLabel(t.Context(), sel)
	require.NoError(t, err)
	require.Empty(t, imgs, "images left behind")
}

// cleanupRunner removes whatever runner r left, even when the test failed.
func cleanupRunner(t *testing.T, c *docker.Client, r *config.Runner) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sel := map[string]string{docker.LabelRunner: r.ShortID()}
		cs, _ := c.ListByLabel(ctx, sel)
		for _, ct := range cs {
			_ = c.Remove(ctx, ct.ID, "")
		}
		imgs, _ := c.ImagesByLabel(ctx, sel)
		for _, img := range imgs {
			_ = c.Remove(ctx, "", img.ID)
		}
	})
}

func TestContract(t *testing.T) {
	c := dockertest.Require(t)
	inner := dockertest.InnerImage(t, c)
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		r := newRunner("http://127.0.0.1:1", inner)
		cleanupRunner(t, c, r)
		e := newExecutor(t, r, c)
		newSpec := func(t *testing.T) executors.JobSpec {
			t.Helper()
			job, err := executortest.NewJob(executortest.NextJobID(), coordinator.Variable{Key: "STANDIN_SLEEP", Value: "2m"})
			require.NoError(t, err)
			return executors.JobSpec{Job: job, ResourceName: executors.ResourceName(r, job.ID)}
		}
		return executortest.Harness{
			Executor: e,
			Runner:   r,
			NewSpec:  newSpec,
			Kill: func(t *testing.T, res executors.Resource) {
				t.Helper()
				require.NoError(t, c.Kill(t.Context(), res.(*localdocker.Resource).ContainerID()))
			},
			Foreign: func(t *testing.T) string {
				t.Helper()
				other := newRunner("http://127.0.0.1:1", inner)
				cleanupRunner(t, c, other)
				oe := newExecutor(t, other, c)
				job, err := executortest.NewJob(executortest.NextJobID())
				require.NoError(t, err)
				spec := executors.JobSpec{Job: job, ResourceName: executors.ResourceName(other, job.ID)}
				res, err := oe.Provision(t.Context(), spec)
				require.NoError(t, err)
				t.Cleanup(func() { _ = oe.Decommission(context.Background(), res) })
				return res.Name()
			},
			Timeout: 2 * time.Minute,
		}
	})
}

// e2eEnv is a fake coordinator with one runner, served to containers on
// the host network.
type e2eEnv struct {
	logs   *bytes.Buffer
	fake   *gitlabfake.Server
	runner *config.Runner
	client *coordinator.Client
	docker *docker.Client
	exec   *localdocker.Executor
}

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	c := dockertest.Require(t)
	inner := dockertest.InnerImage(t, c)
	fake := gitlabfake.New(gitlabfake.Options{}).Start()
	t.Cleanup(fake.Close)
	r := newRunner(fake.URL(), inner)
	fake.AddRunner(r.Token.Reveal())
	cleanupRunner(t, c, r)
	logs := &bytes.Buffer{}
	logger := logrus.New()
	logger.SetOutput(&lockedWriter{w: logs})
	logger.SetLevel(logrus.DebugLevel)
	e, err := localdocker.New(r, executors.Deps{Logger: logger}, localdocker.Options{Docker: c, NetworkMode: "host"})
	require.NoError(t, err)
	return &e2eEnv{
		logs:   logs,
		fake:   fake,
		runner: r,
		client: coordinator.New(fake.URL(), r.Token, coordinator.Options{}),
		docker: c,
		exec:   e,
	}
}

// lockedWriter serialises writes of concurrent loggers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p) //nolint:wrapcheck // test helper
}

// requireNoTokens checks that no runner or job token reached the logs.
func (env *e2eEnv) requireNoTokens(t *testing.T, specs []executors.JobSpec) {
	t.Helper()
	logs := env.logs.String()
	require.Contains(t, logs, "started job container", "the executor logs its transitions")
	require.NotContains(t, logs, env.runner.Token.Reveal())
	for _, s := range specs {
		require.NotContains(t, logs, s.Job.Token.Reveal())
	}
}

// acquire enqueues a job with vars and acquires it as the runner does:
// requested, then accepted (two-phase job commit) before provisioning.
func (env *e2eEnv) acquire(t *testing.T, vars map[string]string) executors.JobSpec {
	t.Helper()
	env.fake.Enqueue(gitlabfake.JobSpec{RunnerToken: env.runner.Token.Reveal(), Variables: vars})
	job, err := env.client.RequestJob(t.Context())
	require.NoError(t, err)
	require.NotNil(t, job)
	require.NoError(t, env.client.AcceptJob(t.Context(), job.ID, job.Token))
	return executors.JobSpec{Job: job, ResourceName: executors.ResourceName(env.runner, job.ID)}
}

// start provisions and launches spec.
func (env *e2eEnv) start(ctx context.Context, spec executors.JobSpec) (executors.Resource, error) {
	res, err := env.exec.Provision(ctx, spec)
	if err != nil {
		return res, err
	}
	return env.exec.Launch(ctx, res, spec)
}

// waitStatus polls Check until pred holds.
func (env *e2eEnv) waitStatus(t *testing.T, res executors.Resource, pred func(executors.Status) bool) executors.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := env.exec.Check(ctx, res)
		require.NoError(t, err)
		if pred(st) {
			return st
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: last status %+v: %v", res.Name(), st, ctx.Err())
		}
	}
}

func exited(st executors.Status) bool { return st.Liveness == executors.Exited }

func TestEndToEndTenJobs(t *testing.T) {
	t.Parallel()
	env := newE2E(t)
	const n = 10
	specs := make([]executors.JobSpec, n)
	for i := range specs {
		specs[i] = env.acquire(t, nil)
	}
	resources := make([]executors.Resource, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() { resources[i], errs[i] = env.start(t.Context(), specs[i]) })
	}
	wg.Wait()
	for i := range specs {
		require.NoError(t, errs[i], "job %d", specs[i].Job.ID)
		require.True(t, resources[i].Launched())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, env.fake.WaitAll(ctx, func(j gitlabfake.Job) bool { return j.State == gitlabfake.StateSuccess }))
	for i, spec := range specs {
		j, ok := env.fake.Job(spec.Job.ID)
		require.True(t, ok)
		require.Equal(t, gitlabfake.StateSuccess, j.State)
		require.Equal(t, fmt.Sprintf("standin: runner=%s executor=docker job=%d docker_socket=yes\n", env.runner.Name, spec.Job.ID), string(j.Trace))
		st := env.waitStatus(t, resources[i], exited)
		require.Equal(t, 0, st.ExitCode)
	}

	for _, res := range resources {
		require.NoError(t, env.exec.Decommission(t.Context(), res))
	}
	requireNothingLeft(t, env.docker, env.runner)
	env.requireNoTokens(t, specs)
	for _, res := range resources {
		st, err := env.exec.Check(t.Context(), res)
		require.NoError(t, err)
		require.Equal(t, executors.Gone, st.Liveness)
	}
}

func TestContainerDiesBeforeReporting(t *testing.T) {
	t.Parallel()
	env := newE2E(t)
	spec := env.acquire(t, map[string]string{"STANDIN_EXIT": "3"})
	res, err := env.start(t.Context(), spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.exec.Decommission(context.Background(), res) })
	st := env.waitStatus(t, res, exited)
	require.Equal(t, 3, st.ExitCode)
	j, ok := env.fake.Job(spec.Job.ID)
	require.True(t, ok)
	require.Equal(t, gitlabfake.StateRunning, j.State, "the inner runner never reported: the dispatcher must fail the job")
	require.Empty(t, j.Trace)
}

func TestReconcileAfterKilledRunner(t *testing.T) {
	t.Parallel()
	env := newE2E(t)
	spec := env.acquire(t, map[string]string{"STANDIN_SLEEP": "5m"})
	res, err := env.start(t.Context(), spec)
	require.NoError(t, err)
	st, err := env.exec.Check(t.Context(), res)
	require.NoError(t, err)
	require.Equal(t, executors.Alive, st.Liveness)
	provisioned := env.acquire(t, nil)
	pres, err := env.exec.Provision(t.Context(), provisioned)
	require.NoError(t, err)

	// The runner is killed: a new process with the same configuration
	// and no state finds both leftovers and deletes them.
	restarted := newExecutor(t, env.runner, env.docker)
	listed, err := restarted.List(t.Context())
	require.NoError(t, err)
	names := []string{}
	for _, l := range listed {
		names = append(names, l.Name)
		require.Equal(t, strings.ToLower(l.Name), l.ID)
	}
	require.ElementsMatch(t, []string{res.Name(), pres.Name()}, names)
	for _, l := range listed {
		orphan, err := restarted.Adopt(t.Context(), l.Name, nil)
		require.NoError(t, err)
		require.NotNil(t, orphan)
		require.InDelta(t, 1, orphan.Weight(), 1e-9)
		require.Equal(t, l.Name == res.Name(), orphan.Launched())
		require.NoError(t, restarted.Decommission(t.Context(), orphan))
	}
	listed, err = restarted.List(t.Context())
	require.NoError(t, err)
	require.Empty(t, listed)
	requireNothingLeft(t, env.docker, env.runner)
}

func TestLaunchRebuildsMissingImage(t *testing.T) {
	t.Parallel()
	env := newE2E(t)
	spec := env.acquire(t, nil)
	res, err := env.exec.Provision(t.Context(), spec)
	require.NoError(t, err)
	require.NoError(t, env.docker.Remove(t.Context(), "", res.ID()))
	launched, err := env.exec.Launch(t.Context(), res, spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.exec.Decommission(context.Background(), launched) })
	st := env.waitStatus(t, launched, exited)
	require.Equal(t, 0, st.ExitCode)
	j, _ := env.fake.Job(spec.Job.ID)
	require.Equal(t, gitlabfake.StateSuccess, j.State)
}

func TestProvisionBuildFailure(t *testing.T) {
	t.Parallel()
	env := newE2E(t)
	env.runner.HeptapodRunnerMainImage = "paas-runner-test/missing:" + dockertest.RandomSuffix()
	spec := env.acquire(t, nil)
	res, err := env.exec.Provision(t.Context(), spec)
	require.Error(t, err)
	require.Nil(t, res)
	je, ok := errors.AsType[*executors.JobError](err)
	require.True(t, ok, "want a JobError, got %v", err)
	require.Equal(t, coordinator.RunnerSystemFailure, je.Reason)
	require.ErrorIs(t, err, docker.ErrBuild)
	require.NotContains(t, err.Error(), env.runner.Token.Reveal())
	require.NotContains(t, err.Error(), spec.Job.Token.Reveal())
	require.Equal(t, "paas-runner could not build the image of this job's host", executors.PublicMessage(err))
	requireNothingLeft(t, env.docker, env.runner)
}

func TestAgentMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		agentImage bool
	}{
		{name: "agent binary copied into the context"},
		{name: "agent copied from agent_image", agentImage: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newE2E(t)
			env.runner.InnerRunner = config.InnerRunnerAgent
			opts := localdocker.Options{Docker: env.docker, NetworkMode: "host"}
			if tc.agentImage {
				env.runner.AgentImage = env.runner.HeptapodRunnerMainImage
			} else {
				opts.AgentBinary = dockertest.StandinBinary(t)
			}
			e, err := localdocker.New(env.runner, executors.Deps{}, opts)
			require.NoError(t, err)
			env.exec = e
			// The job's image is the locally built stand-in image (nothing
			// can be pulled here).
			env.fake.Enqueue(gitlabfake.JobSpec{RunnerToken: env.runner.Token.Reveal(), Image: env.runner.HeptapodRunnerMainImage})
			job, err := env.client.RequestJob(t.Context())
			require.NoError(t, err)
			require.NotNil(t, job)
			require.NoError(t, env.client.AcceptJob(t.Context(), job.ID, job.Token))
			spec := executors.JobSpec{Job: job, ResourceName: executors.ResourceName(env.runner, job.ID)}
			res, err := env.start(t.Context(), spec)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Decommission(context.Background(), res) })
			st := env.waitStatus(t, res, exited)
			require.Equal(t, 0, st.ExitCode)
			j, _ := env.fake.Job(job.ID)
			require.Equal(t, gitlabfake.StateSuccess, j.State)
			require.Contains(t, string(j.Trace), "executor=docker")
			require.NoError(t, e.Decommission(t.Context(), res))
			requireNothingLeft(t, env.docker, env.runner)
		})
	}
}

// An image that lost its tag (a daemon restarted in the middle of a
// removal) still carries the resource's labels: Decommission removes it by
// id instead of leaking it forever.
func TestDecommissionRemovesUntaggedLeftovers(t *testing.T) {
	t.Parallel()
	env := newE2E(t)
	spec := env.acquire(t, nil)
	res, err := env.exec.Provision(t.Context(), spec)
	require.NoError(t, err)

	// A second image of the same resource under another reference stands
	// for the leftover the tag-based removal cannot see.
	var buf bytes.Buffer
	bc := &deploy.Context{Files: []deploy.File{{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM " + env.runner.HeptapodRunnerMainImage + "\nLABEL leftover=" + dockertest.RandomSuffix() + "\n")}}}
	require.NoError(t, bc.WriteTar(&buf))
	leftover := "paas-runner-test/leftover:" + dockertest.RandomSuffix()
	labels := map[string]string{docker.LabelRunner: env.runner.ShortID(), docker.LabelName: res.Name()}
	require.NoError(t, env.docker.BuildImage(t.Context(), leftover, &buf, labels))

	require.NoError(t, env.exec.Decommission(t.Context(), res))
	imgs, err := env.docker.ImagesByLabel(t.Context(), labels)
	require.NoError(t, err)
	require.Empty(t, imgs, "leftover image removed")
	requireNothingLeft(t, env.docker, env.runner)
}
