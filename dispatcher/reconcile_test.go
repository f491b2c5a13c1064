package dispatcher

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
)

// countingObserver counts orphan events.
type countingObserver struct {
	NopObserver
	mu             sync.Mutex
	found, deleted int
}

func (c *countingObserver) OrphanFound(string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.found++
}

func (c *countingObserver) OrphanDeleted(string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted++
}

func (c *countingObserver) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.found, c.deleted
}

func TestReconciliation(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "orphans deleted"
		if keep {
			name = "orphans kept with paas_finished_jobs_keep_resources"
		}
		t.Run(name, func(t *testing.T) {
			var launched launchedJobs
			h := newHarness(t, harnessOpts{
				mutate:      func(c *config.Config) { c.PaasFinishedJobsKeepResources = keep },
				innerRunner: func(h *harness, s executors.JobSpec) { launched.add(s) },
			})
			obs := &countingObserver{}
			h.d.obs = obs
			// A resource left by a previous incarnation that no job tracks.
			p, err := executortest.NewJob(executortest.NextJobID())
			require.NoError(t, err)
			_, err = h.fake.Provision(t.Context(), executors.JobSpec{Job: p, ResourceName: executors.ResourceName(h.runner, p.ID)})
			require.NoError(t, err)
			// A tracked running job whose resource vanishes.
			id := h.enqueue("")
			h.start()
			require.Eventually(t, func() bool { return launched.count() == 1 }, 10*time.Second, time.Millisecond)
			require.Eventually(t, func() bool {
				f, _ := obs.counts()
				return f >= 1
			}, 10*time.Second, time.Millisecond)
			spec, _ := launched.get(id)
			require.True(t, h.cloud.Vanish(spec.ResourceName))
			h.waitJobs([]int64{id}, 10*time.Second, final)
			j, _ := h.gl.Job(id)
			require.Equal(t, gitlabfake.StateFailed, j.State)
			require.Equal(t, "runner_system_failure", j.FailureReason)
			if keep {
				_, deleted := obs.counts()
				require.Zero(t, deleted)
				require.Equal(t, 1, h.cloud.Live(h.prefix()), "the orphan is kept")
				return
			}
			require.Eventually(t, func() bool {
				_, deleted := obs.counts()
				return deleted == 1 && h.cloud.Live(h.prefix()) == 0
			}, 10*time.Second, time.Millisecond)
			h.waitIdle(10 * time.Second)
			h.requireInvariants()
		})
	}
}

func TestJobUnknownToCoordinatorIsReleased(t *testing.T) {
	var launched launchedJobs
	h := newHarness(t, harnessOpts{innerRunner: func(h *harness, s executors.JobSpec) { launched.add(s) }})
	h.enqueue("")
	h.start()
	require.Eventually(t, func() bool { return launched.count() == 1 }, 10*time.Second, time.Millisecond)
	h.gl.SetFault("/job", gitlabfake.Fault{ErrorRate: 1, Status: 404})
	h.waitIdle(10 * time.Second)
	require.Zero(t, h.cloud.Live(h.prefix()))
	require.Equal(t, 1, h.gl.Requests("/jobs/:id"), "only the accept: nothing reported for a job the coordinator forgot")
	h.requireInvariants()
}
