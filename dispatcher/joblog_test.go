package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
)

func TestJobLogLine(t *testing.T) {
	const pre = ansiBoldRed + jobLogPrefix
	tests := []struct {
		name, msg, want string
	}{
		{"plain", "Job not active (no log) after 300 seconds", pre + "Job not active (no log) after 300 seconds" + ansiReset + "\n"},
		{"multi-line keeps colour and prefix per line", "a\nb", pre + "a" + ansiReset + "\n" + pre + "b" + ansiReset + "\n"},
		{"control characters dropped", "x\x1b[2Jy\rz\x00", pre + "x[2Jyz" + ansiReset + "\n"},
		{"tabs kept", "a\tb", pre + "a\tb" + ansiReset + "\n"},
		{"non-ASCII kept", "déploiement échoué ✗", pre + "déploiement échoué ✗" + ansiReset + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, string(jobLogLine(tc.msg)))
		})
	}
}

// publicFailure fails every provisioning with a public, non-ASCII message.
type publicFailure struct{ *executortest.Fake }

const publicMsg = "Le déploiement a échoué — réessayez ✗"

func (publicFailure) Provision(context.Context, executors.JobSpec) (executors.Resource, error) {
	return nil, &executors.JobError{Public: publicMsg, Reason: coordinator.RunnerSystemFailure, Cause: context.DeadlineExceeded}
}

func TestFailureLineIsByteExactAndPublicOnly(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.d.runners[h.runner.ShortID()].exec = publicFailure{h.fake}
	id := h.enqueue("")
	h.start()
	h.waitJobs([]int64{id}, 10*time.Second, final)
	j, _ := h.gl.Job(id)
	require.Equal(t, gitlabfake.StateFailed, j.State)
	require.Equal(t, "runner_system_failure", j.FailureReason, "the executor's reason is reported")
	require.Equal(t, string(jobLogLine(publicMsg)), string(j.Trace), "exactly one line, byte-exact")
	require.NotContains(t, string(j.Trace), "deadline", "the internal cause never reaches the job log")
	h.waitIdle(5 * time.Second)
}
