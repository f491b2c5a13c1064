package dispatcher

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/quota"
	"gitlab.com/paas-runner/paas-runner/state"
)

// memCoordinator is an in-memory coordinator: it hands out left jobs and
// says a job is finished once it was launched.
type memCoordinator struct {
	mu       sync.Mutex
	left     int
	launched map[string]bool
}

func (m *memCoordinator) RequestJob(context.Context) (*coordinator.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.left == 0 {
		return nil, nil
	}
	m.left--
	return executortest.NewJob(executortest.NextJobID())
}

func (m *memCoordinator) JobStatus(_ context.Context, tok config.Secret) (coordinator.JobState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.launched[tok.Reveal()] {
		return coordinator.JobState{Status: "success", Finished: true}, nil
	}
	return coordinator.JobState{Status: "running"}, nil
}

func (m *memCoordinator) AppendTrace(_ context.Context, _ int64, _ config.Secret, off int64, data []byte) (int64, error) {
	return off + int64(len(data)), nil
}

func (m *memCoordinator) AcceptJob(context.Context, int64, config.Secret) error { return nil }

func (m *memCoordinator) FailJob(context.Context, int64, config.Secret, coordinator.FailureReason, int) error {
	return nil
}

func (m *memCoordinator) ReadTrace(context.Context, config.Secret, int64, int64) ([]byte, error) {
	return nil, nil
}

// countingStore signals when n jobs were forgotten.
type countingStore struct {
	state.Store
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *countingStore) Delete(k state.Key) {
	c.Store.Delete(k)
	if c.n.Add(1) == c.want {
		close(c.done)
	}
}

// BenchmarkEventHandling measures the dispatcher's cost per job for a
// whole lifecycle (acquire, provision, status check, launch, finish check,
// decommission, forget: about a dozen owner events) with an in-memory
// coordinator and executor, so that owner work dominates.
func BenchmarkEventHandling(b *testing.B) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := config.Default()
	cfg.Concurrent = 200
	cfg.PaasMaxConcurrentProvisioning = 100
	cfg.CheckInterval = 0.0001
	cfg.JobProgressPollInterval = 0.001
	cfg.PaasLogStatistics = false
	cfg.QuotaComputation = &config.QuotaComputation{ReferenceRunner: "bench", ReferenceFlavor: "M", ReferenceJobsCount: 200}
	r := config.DefaultRunner()
	r.Name, r.URL, r.Token, r.Executor = "bench", "http://coordinator.invalid", "glrt-bench", config.ExecutorFake
	cfg.Runners = []config.Runner{r}
	co := &memCoordinator{left: b.N, launched: map[string]bool{}}
	fake := executortest.NewFake(executortest.NewCloud(), &cfg.Runners[0], executortest.Options{
		Flavors: quota.DefaultCleverFlavors(), MaxFlavor: "M",
		OnLaunch: func(s executors.JobSpec) {
			co.mu.Lock()
			co.launched[s.Job.Token.Reveal()] = true
			co.mu.Unlock()
		},
	})
	store := &countingStore{Store: state.NewMemory(), want: int64(b.N), done: make(chan struct{})}
	id := cfg.Runners[0].ShortID()
	d, err := New(cfg, Options{
		Logger: log, Store: store,
		Executors:    map[string]executors.Executor{id: fake},
		Coordinators: map[string]Coordinator{id: co},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { done <- d.Run(ctx) }()
	select {
	case <-store.done:
	case <-time.After(5 * time.Minute):
		b.Fatal("jobs did not drain")
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	d.wg.Wait()
}
