package dispatcher

import (
	"context"
	"fmt"
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
	"gitlab.com/paas-runner/paas-runner/internal/testlog"
	"gitlab.com/paas-runner/paas-runner/quota"
	"gitlab.com/paas-runner/paas-runner/state"
)

const testRunnerToken = "glrt-dispatcher-test-runner-token"

// harness runs one dispatcher against gitlabfake and a Fake executor.
type harness struct {
	t      *testing.T
	gl     *gitlabfake.Server
	cloud  *executortest.Cloud
	cfg    *config.Config
	runner *config.Runner
	fake   *executortest.Fake
	coord  *coordinator.Client
	store  state.Store
	logs   *testlog.Buffer
	log    *logrus.Logger

	d      *Dispatcher
	cancel context.CancelFunc
	force  chan struct{}
	done   chan error

	mu         sync.Mutex
	violations []string
	maxProv    int
	maxWeight  float64
	events     int
}

type harnessOpts struct {
	concurrent   int
	provisioning int
	refFlavor    string
	refJobs      int
	watch        bool
	watchTimeout float64
	fake         executortest.Options
	mutate       func(*config.Config)
	store        state.Store
	cloud        *executortest.Cloud
	gl           *gitlabfake.Server
	tuning       Tuning
	// extraRunner, when set, adds a second runner (a copy of the first
	// that it edits) with its own Fake and client.
	extraRunner func(r *config.Runner)
	// innerRunner plays every launched job: nil = succeed after a short
	// delay.
	innerRunner func(h *harness, spec executors.JobSpec)
}

// scaled is the time scale of tests: 1 "second" of configuration is 1 ms.
const scaled = 0.001

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, logs: &testlog.Buffer{}}
	h.log = logrus.New()
	h.log.SetOutput(h.logs)
	h.log.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			out := h.logs.String()
			if len(out) > 60000 {
				out = "…" + out[len(out)-60000:]
			}
			t.Log("dispatcher logs:\n" + out)
		}
	})
	h.gl = o.gl
	if h.gl == nil {
		h.gl = gitlabfake.New(gitlabfake.Options{Seed: 1}).Start()
		t.Cleanup(h.gl.Close)
		h.gl.AddRunner(testRunnerToken)
	}
	h.cloud = o.cloud
	if h.cloud == nil {
		h.cloud = executortest.NewCloud()
	}
	if o.concurrent == 0 {
		o.concurrent = 20
	}
	if o.provisioning == 0 {
		o.provisioning = 5
	}
	if o.refFlavor == "" {
		o.refFlavor = "3XL"
	}
	if o.refJobs == 0 {
		o.refJobs = 3
	}
	cfg := config.Default()
	cfg.Concurrent = o.concurrent
	cfg.PaasMaxConcurrentProvisioning = o.provisioning
	cfg.CheckInterval = 3 * scaled
	cfg.JobProgressPollInterval = 30 * scaled
	cfg.ShutdownTimeout = 5
	cfg.ReconcileInterval = 300 * scaled
	cfg.PaasLogStatistics = true
	cfg.QuotaComputation = &config.QuotaComputation{ReferenceRunner: "fake-runner", ReferenceFlavor: o.refFlavor, ReferenceJobsCount: o.refJobs}
	r := config.DefaultRunner()
	r.Name = "fake-runner"
	r.URL = h.gl.URL()
	r.Token = testRunnerToken
	r.Executor = config.ExecutorFake
	if o.watch {
		r.TraceWatch = &config.TraceWatch{
			Token:          gitlabfake.DefaultAdminToken,
			TimeoutSeconds: config.Seconds(o.watchTimeout),
			PollStep:       2 * scaled,
		}
	}
	cfg.Runners = []config.Runner{r}
	if o.extraRunner != nil {
		r2 := r
		o.extraRunner(&r2)
		cfg.Runners = append(cfg.Runners, r2)
	}
	if o.mutate != nil {
		o.mutate(cfg)
	}
	h.cfg = cfg
	h.runner = &cfg.Runners[0]

	fo := o.fake
	if fo.Flavors == nil {
		fo.Flavors = quota.DefaultCleverFlavors()
	}
	if fo.DefaultFlavor == "" {
		fo.DefaultFlavor = "M"
	}
	inner := o.innerRunner
	if inner == nil {
		inner = succeedSoon
	}
	fo.OnLaunch = func(spec executors.JobSpec) { inner(h, spec) }
	fo.Logger = h.log
	h.fake = executortest.NewFake(h.cloud, h.runner, fo)
	h.coord = coordinator.New(h.gl.URL(), h.runner.Token, coordinator.Options{
		Logger:       h.log.WithField("component", "coordinator"),
		Timeout:      5 * time.Second,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	})
	h.store = o.store
	if h.store == nil {
		h.store = state.NewMemory()
	}
	tuning := o.tuning
	if tuning.MaxBackoff == 0 {
		tuning.MaxBackoff = 50 * time.Millisecond
	}
	if tuning.ProvisionTimeout == 0 {
		tuning.ProvisionTimeout = 10 * time.Second
	}
	if tuning.CallTimeout == 0 {
		tuning.CallTimeout = 10 * time.Second
	}
	h.force = make(chan struct{})
	execs := map[string]executors.Executor{h.runner.ShortID(): h.fake}
	coords := map[string]Coordinator{h.runner.ShortID(): h.coord}
	for i := 1; i < len(cfg.Runners); i++ {
		r := &cfg.Runners[i]
		execs[r.ShortID()] = executortest.NewFake(h.cloud, r, executortest.Options{Flavors: fo.Flavors, Logger: h.log})
		coords[r.ShortID()] = coordinator.New(h.gl.URL(), r.Token, coordinator.Options{
			Logger: h.log, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		})
	}
	d, err := New(cfg, Options{
		Logger:       h.log,
		Store:        h.store,
		Executors:    execs,
		Coordinators: coords,
		Force:        h.force,
		Tuning:       tuning,
		afterEvent:   h.checkInvariants,
	})
	require.NoError(t, err)
	h.d = d
	return h
}

// checkInvariants runs in the owner goroutine after every event.
func (h *harness) checkInvariants(d *Dispatcher) {
	s := d.ledger.Snapshot()
	var problems []string
	if err := d.ledger.CheckInvariants(); err != nil {
		problems = append(problems, err.Error())
	}
	if d.quotaKnown {
		if err := s.CheckLimits(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events++
	h.maxProv = max(h.maxProv, s.Provisioning)
	h.maxWeight = max(h.maxWeight, s.WeightUsed)
	if len(problems) > 0 && len(h.violations) < 20 {
		h.violations = append(h.violations, fmt.Sprintf("%v (snapshot %+v)", problems, s))
	}
}

// start runs the dispatcher until the test ends (graceful stop).
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(h.t.Context()))
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	h.t.Cleanup(func() { _ = h.stop() })
	select {
	case <-h.d.Ready():
	case err := <-h.done:
		h.done <- err
		h.t.Fatalf("dispatcher stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("dispatcher not ready after 10s")
	}
}

// stop shuts the dispatcher down gracefully and returns Run's error.
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		h.d.wg.Wait() // operations still in flight after a forced stop
		return err
	case <-time.After(20 * time.Second):
		h.t.Error("dispatcher did not stop within 20s")
		return nil
	}
}

// requireInvariants fails the test if the invariant checker saw a problem.
func (h *harness) requireInvariants() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(h.t, h.violations, "ledger invariants violated")
	require.Positive(h.t, h.events)
}

// enqueue adds a job for the harness runner with the given flavor ("" =
// default).
func (h *harness) enqueue(flavor string) int64 {
	spec := gitlabfake.JobSpec{RunnerToken: testRunnerToken}
	if flavor != "" {
		spec.Variables = map[string]string{quota.FlavorVariable: flavor}
	}
	return h.gl.Enqueue(spec).ID
}

// waitJobs waits until every listed job satisfies pred on gitlabfake.
func (h *harness) waitJobs(ids []int64, timeout time.Duration, pred func(gitlabfake.Job) bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), timeout)
	defer cancel()
	for _, id := range ids {
		j, err := h.gl.WaitJob(ctx, id, pred)
		require.NoError(h.t, err, "job %d: last seen in state %q, trace %q", id, j.State, j.Trace)
	}
}

// waitIdle waits until the dispatcher tracks nothing and the ledger is
// exactly zero.
func (h *harness) waitIdle(timeout time.Duration) {
	h.t.Helper()
	since := time.Now() // snapshots are published at most every publishEvery
	require.Eventually(h.t, func() bool {
		s := h.d.Snapshot()
		return s.Time.After(since) && len(s.Jobs) == 0 && s.Ledger.Jobs == 0 && s.Ledger.WeightUsed == 0 && s.Ledger.Provisioning == 0
	}, timeout, time.Millisecond, "dispatcher not idle: %+v", h.d.Snapshot())
}

func (h *harness) prefix() string { return executors.ResourcePrefix(h.runner) }

func final(j gitlabfake.Job) bool {
	return j.State == gitlabfake.StateSuccess || j.State == gitlabfake.StateFailed || j.State == gitlabfake.StateCanceled
}

// succeedSoon plays the inner runner: log a line and succeed shortly.
func succeedSoon(h *harness, spec executors.JobSpec) {
	id := spec.Job.ID
	go func() {
		t := time.NewTimer(time.Duration(id%5) * time.Millisecond)
		defer t.Stop()
		<-t.C
		_ = h.gl.SimulateRun(id, "Running on a fresh host\n", gitlabfake.StateSuccess)
	}()
}
