package devmode

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/agent"
	"gitlab.com/paas-runner/paas-runner/agent/agenttest"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
)

// agentMarker makes this test binary act as `paas-runner exec-job` when the
// local-process executor launches it (it runs os.Executable()).
const agentMarker = "PAAS_RUNNER_DEVMODE_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(agentMarker) == "1" && len(os.Args) > 1 && os.Args[1] == "exec-job" {
		os.Exit(agent.Main(context.Background(), os.Args[2:], agent.Options{}))
	}
	os.Exit(m.Run())
}

// TestDevFlow runs the demo pipeline non-interactively, as `make dev`
// would, with sleeps and intervals scaled down.
func TestDevFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test")
	}
	t.Setenv(agentMarker, "1")
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(io.Discard)
	if testing.Verbose() {
		log.SetOutput(os.Stderr)
	}
	dir := t.TempDir()
	sum, err := Run(t.Context(), Options{Dir: dir, Scale: 0.1, Out: &out, Logger: log, Timeout: 2 * time.Minute})
	require.NoError(t, err, out.String())
	require.True(t, sum.AllExpected(), out.String())
	require.Len(t, sum.Jobs, len(DemoPipeline(1)))

	weights := map[string]float64{}
	for _, j := range sum.Jobs {
		b, err := os.ReadFile(j.LogPath)
		require.NoError(t, err)
		log := string(b)
		switch j.Name {
		case "docs":
			require.Contains(t, log, "The paas-runner dev-mode demo project, version 1.0.0.", "checkout of the demo repository")
		case "flaky-test":
			require.Contains(t, log, "after_script still runs after a failure")
		case "deploy-preview":
			require.Contains(t, log, "deploying with token [MASKED]")
		case "huge-job":
			require.Contains(t, log, "XXL")
		}
		if j.Weight > 0 {
			weights[j.Flavor] = j.Weight
		}
	}
	require.Less(t, weights["XS"], weights["S"])
	require.Less(t, weights["M"], weights["L"])
	require.Contains(t, out.String(), "Every job reached its expected outcome.")
	require.Contains(t, out.String(), "quota ")
	require.NotEmpty(t, sum.MetricsURL)
	ran := 0.0
	for _, j := range sum.Jobs {
		if j.Weight > 0 {
			ran++
		}
	}
	require.InDelta(t, ran, sum.Counters[`paas_runner_job_launches_total{runner="dev"}`], 0, "%v", sum.Counters)
	entries, err := os.ReadDir(filepath.Join(dir, "jobs"))
	require.NoError(t, err)
	require.Empty(t, entries, "work directories left behind")
	require.NotContains(t, out.String(), "\x1b[", "non-interactive output has escapes")
}

// TestDevFlowLocalDocker runs a small pipeline with --executor
// local-docker: each job in its own image (a minimal sh image) with the
// static agent. Skipped without a Docker daemon (fails under CI=true).
func TestDevFlowLocalDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	c := dockertest.Require(t)
	image := agenttest.ShellImage(t, c)
	bin := agenttest.StaticAgent(t)
	jobs := []DemoJob{
		{Name: "build", Flavor: "S", Want: "success", Script: []string{"echo building in docker", "read v < VERSION; echo \"version $v\""}},
		{Name: "fail", Flavor: "XS", Want: "failed", WantReason: "script_failure", Script: []string{"exit 2"}, AfterScript: []string{"echo after in docker"}},
		{Name: "huge", Flavor: "XXL", Want: "failed", WantReason: "script_failure", Script: []string{"echo never"}},
	}
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(io.Discard)
	sum, err := Run(t.Context(), Options{
		Dir: t.TempDir(), Scale: 0.2, Out: &out, Logger: log, Timeout: 3 * time.Minute,
		Executor: "local-docker", Image: image, AgentBinary: bin, Jobs: jobs, MetricsListen: "off",
	})
	require.NoError(t, err, out.String())
	require.True(t, sum.AllExpected(), out.String())
	b, err := os.ReadFile(sum.Jobs[0].LogPath)
	require.NoError(t, err)
	require.Contains(t, string(b), "version 1.0.0")
	b, err = os.ReadFile(sum.Jobs[1].LogPath)
	require.NoError(t, err)
	require.Contains(t, string(b), "after in docker")
}
