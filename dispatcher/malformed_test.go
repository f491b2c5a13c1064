package dispatcher

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

// A payload GitLab assigned to us but that cannot be decoded is reported
// failed with a readable line (the reference's poll loop crashed instead,
// §12 item 21); the next jobs still run and nothing is provisioned for it.
func TestMalformedPayloadFailsOnlyThatJob(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	bad := h.gl.Enqueue(gitlabfake.JobSpec{
		RunnerToken: testRunnerToken,
		Mutate:      func(p map[string]any) { p["steps"] = "not a list" },
	}).ID
	next := []int64{h.enqueue("S"), h.enqueue("S")}
	h.start()
	h.waitJobs(append([]int64{bad}, next...), 20*time.Second, final)

	j, _ := h.gl.Job(bad)
	require.Equal(t, gitlabfake.StateFailed, j.State)
	require.Equal(t, "runner_unsupported", j.FailureReason)
	require.Contains(t, string(j.Trace), "could not read this job's definition")
	require.NotContains(t, string(j.Trace), j.Token)
	for _, id := range next {
		j, _ := h.gl.Job(id)
		require.Equal(t, gitlabfake.StateSuccess, j.State, "job %d after the malformed one", id)
	}
	require.Equal(t, 2, h.fake.Provisioned(), "nothing provisioned for the malformed payload")
	h.waitIdle(5 * time.Second)
	h.requireInvariants()
}
