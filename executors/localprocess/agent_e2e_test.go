package localprocess

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"gitlab.com/paas-runner/paas-runner/agent"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
)

// agentEnv makes this test binary act as `paas-runner exec-job` when the
// executor launches it.
const agentEnv = "PAAS_RUNNER_LOCALPROCESS_TEST_AGENT=1"

func TestMain(m *testing.M) {
	if os.Getenv("PAAS_RUNNER_LOCALPROCESS_TEST_AGENT") == "1" && len(os.Args) > 1 && os.Args[1] == "exec-job" {
		os.Exit(agent.Main(context.Background(), os.Args[2:], agent.Options{}))
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestRealAgent launches the real agent as a child process against
// gitlabfake and checks the job's outcome and the process' exit code.
func TestRealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test")
	}
	tests := []struct {
		name      string
		script    []string
		wantState string
		wantCode  int
	}{
		{name: "success", script: []string{"echo hi from the agent"}, wantState: gitlabfake.StateSuccess, wantCode: 0},
		{name: "failure", script: []string{"exit 4"}, wantState: gitlabfake.StateFailed, wantCode: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := gitlabfake.New(gitlabfake.Options{}).Start()
			t.Cleanup(fake.Close)
			fake.AddRunner("glrt-lp")
			fake.Enqueue(gitlabfake.JobSpec{Script: tc.script, Variables: map[string]string{"GIT_STRATEGY": "none"}})
			job, err := coordinator.New(fake.URL(), "glrt-lp", coordinator.Options{}).RequestJob(t.Context())
			require.NoError(t, err)

			r := testRunner(t)
			r.URL = fake.URL()
			r.Extra = map[string]any{"agent": map[string]any{"trace_interval": 0.05, "keep_alive_interval": 0.05}}
			e, err := New(r, quietDeps(), Options{Env: []string{agentEnv}})
			require.NoError(t, err)
			spec := executors.JobSpec{Job: job, ResourceName: executors.ResourceName(r, job.ID)}
			res, err := e.Provision(t.Context(), spec)
			require.NoError(t, err)
			res, err = e.Launch(t.Context(), res, spec)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Decommission(context.Background(), res) })

			var st executors.Status
			require.Eventually(t, func() bool {
				st, err = e.Check(t.Context(), res)
				require.NoError(t, err)
				return st.Liveness == executors.Exited
			}, 30*time.Second, 20*time.Millisecond)
			got, _ := fake.Job(job.ID)
			log, _ := os.ReadFile(res.ID() + "/" + LogFile)
			require.Equal(t, tc.wantState, got.State, "trace: %s\nagent log: %s", got.Trace, log)
			require.Equal(t, tc.wantCode, st.ExitCode)
			require.NotContains(t, string(log), job.Token.Reveal())
		})
	}
}
