package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/agent/agenttest"
	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/localdocker"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
)

// TestAgentInLocalDocker runs a job with local-docker and inner_runner =
// "agent": the job's image (a minimal image with only sh) gets the static
// agent, which clones the project over HTTP, runs the script and reports
// success to gitlabfake. Skipped without a Docker daemon (fails under
// CI=true).
func TestAgentInLocalDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	c := dockertest.Require(t)
	image := agenttest.ShellImage(t, c)
	bin := agenttest.StaticAgent(t)
	repoDir, shas := makeRepo(t, "v1", "v2")

	fake := newFake(t, gitlabfake.Options{})
	r := config.DefaultRunner()
	r.Name = "agent-docker-" + dockertest.RandomSuffix()
	r.URL = fake.URL()
	r.Token = config.Secret(testRunnerToken)
	r.Executor = config.ExecutorLocalDocker
	r.InnerRunner = config.InnerRunnerAgent
	r.Extra = map[string]any{"agent": map[string]any{"trace_interval": 0.2, "keep_alive_interval": 0.5}}
	e, err := localdocker.New(&r, executors.Deps{Logger: testLogger(t)}, localdocker.Options{Docker: c, NetworkMode: "host", AgentBinary: bin})
	require.NoError(t, err)

	job := acquire(t, fake, gitlabfake.JobSpec{Image: image, Script: []string{
		"echo hello from $CI_JOB_NAME in docker",
		"test -d \"$CI_PROJECT_DIR/.git\" && echo checked-out",
		"read v < version.txt; echo \"version $v\"",
	}}, false)
	url := serveRepo(t, repoDir, job.Token.Reveal())
	job = rewriteGit(t, job, url, shas[1])
	spec := executors.JobSpec{Job: job, ResourceName: executors.ResourceName(&r, job.ID)}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := e.Provision(ctx, spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Decommission(context.Background(), res) })
	res, err = e.Launch(ctx, res, spec)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := e.Check(ctx, res)
		require.NoError(t, err)
		return st.Liveness == executors.Exited
	}, 2*time.Minute, 100*time.Millisecond)
	got, _ := fake.Job(job.ID)
	trace := string(got.Trace)
	require.Equal(t, gitlabfake.StateSuccess, got.State, trace)
	require.Contains(t, trace, "hello from unit-tests in docker")
	require.Contains(t, trace, "checked-out")
	require.Contains(t, trace, "version v2")
	require.Empty(t, got.OutputMismatch)
	require.NoError(t, e.Decommission(ctx, res))
}

// rewriteGit points the job's payload (Raw, which executors forward) at
// url/proj/.git and sha, with a shallow fetch of main.
func rewriteGit(t *testing.T, job *coordinator.Job, url, sha string) *coordinator.Job {
	t.Helper()
	var p map[string]any
	require.NoError(t, json.Unmarshal(job.Raw, &p))
	gi := p["git_info"].(map[string]any)
	gi["repo_url"] = strings.Replace(url, "http://", "http://gitlab-ci-token:"+job.Token.Reveal()+"@", 1) + "/proj/.git"
	gi["sha"] = sha
	gi["depth"] = 1
	gi["refspecs"] = []string{"+refs/heads/main:refs/remotes/origin/main"}
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	out, err := coordinator.ParseJob(raw)
	require.NoError(t, err)
	return out
}
