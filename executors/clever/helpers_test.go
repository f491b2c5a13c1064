package clever_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	cleverexec "gitlab.com/paas-runner/paas-runner/executors/clever"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
)

const (
	orgaA       = "orga_aaaaaaaa-0000-4000-8000-000000000001"
	tokenA      = "ccTokenA-5f0c2d9e41b7"
	orgaB       = "orga_bbbbbbbb-0000-4000-8000-000000000002"
	tokenB      = "ccTokenB-93ad7e1c0f55"
	runnerToken = "glrt-RunnerSecret-8d2f61aa"
)

// env is one executor under test against a fake Clever Cloud.
type env struct {
	fake   *clevertest.Server
	runner *config.Runner
	exec   *cleverexec.Executor
	logs   *logtest.Hook
	logger *logrus.Logger
}

func newRunner(fake *clevertest.Server) *config.Runner {
	r := config.DefaultRunner()
	r.Name = "clever-test"
	r.URL = "https://gitlab.example"
	r.Token = runnerToken
	r.Executor = config.ExecutorCleverDocker
	r.CCAPIURL = fake.APIURL()
	r.CCOrgaID = orgaA
	r.CCToken = tokenA
	r.CCMaxFlavor = "2XL"
	r.CCDeploymentRepoTimeout = 5
	r.CCDeploymentRepoWaitStep = 0.005
	r.CCExtraEnv = map[string]string{"CC_ENABLE_HEPTAPOD_RUNNER": "true", "A_EXTRA": "1"}
	return &r
}

func fastClient() clever.Options {
	return clever.Options{RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
}

func newEnv(t *testing.T, mutRunner func(*config.Runner), mutOpts func(*cleverexec.Options)) *env {
	t.Helper()
	fake := clevertest.New(t)
	fake.AddOrga(orgaA, tokenA)
	fake.AddOrga(orgaB, tokenB)
	r := newRunner(fake)
	if mutRunner != nil {
		mutRunner(r)
	}
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	opts := cleverexec.Options{Logger: logger, Client: fastClient(), PushAttempts: 2}
	if mutOpts != nil {
		mutOpts(&opts)
	}
	ex, err := cleverexec.New(r, opts)
	require.NoError(t, err)
	return &env{fake: fake, runner: r, exec: ex, logs: hook, logger: logger}
}

// logText returns every captured log line, formatted with all fields.
func (e *env) logText(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, entry := range e.logs.AllEntries() {
		line, err := entry.String()
		require.NoError(t, err)
		b.WriteString(line)
	}
	return b.String()
}

func (e *env) spec(t *testing.T, vars ...coordinator.Variable) executors.JobSpec {
	t.Helper()
	job, err := executortest.NewJob(executortest.NextJobID(), vars...)
	require.NoError(t, err)
	return executors.JobSpec{Job: job, ResourceName: executors.ResourceName(e.runner, job.ID)}
}

func requireNoSecrets(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		require.NotContains(t, text, s, "%s leaks a secret", where)
	}
}
