package dispatcher

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/state"
)

// intentChecker wraps a Fake: when Provision is called, it reads the state
// FILE from disk and records whether the job's resource name is already
// there — intent before action, proven on the durable copy.
type intentChecker struct {
	*executortest.Fake
	path string

	mu      sync.Mutex
	missing []string
	checked int
}

func (c *intentChecker) Provision(ctx context.Context, spec executors.JobSpec) (executors.Resource, error) {
	f, _, err := state.ReadFile(c.path, nil)
	c.mu.Lock()
	c.checked++
	found := false
	if err == nil {
		for _, j := range f.Jobs {
			if j.ResourceName == spec.ResourceName {
				found = true
			}
		}
	}
	if !found {
		c.missing = append(c.missing, spec.ResourceName)
	}
	c.mu.Unlock()
	return c.Fake.Provision(ctx, spec)
}

func TestIntentIsDurableBeforeProvision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	log := logrus.New()
	log.SetOutput(io.Discard)
	store, err := state.Open(path, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close(context.Background()) })

	h := newHarness(t, harnessOpts{store: store})
	checker := &intentChecker{Fake: h.fake, path: path}
	h.d.runners[h.runner.ShortID()].exec = checker
	var ids []int64
	for _, f := range []string{"XS", "S", "M", "L", "S", "XS"} {
		ids = append(ids, h.enqueue(f))
	}
	h.start()
	h.waitJobs(ids, 20*time.Second, final)
	h.waitIdle(5 * time.Second)

	checker.mu.Lock()
	defer checker.mu.Unlock()
	require.Equal(t, len(ids), checker.checked, "every job provisioned once")
	require.Empty(t, checker.missing, "resources created before their name was on disk")
}
