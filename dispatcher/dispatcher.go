package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
	"gitlab.com/paas-runner/paas-runner/state"
)

// Coordinator is what the dispatcher needs from a coordinator client
// (*coordinator.Client implements it); tests wrap it to count or break
// calls. Implementations must be safe for concurrent use; every method
// honours ctx and has its own per-request timeout.
type Coordinator interface {
	// RequestJob acquires a job: (nil, nil) when there is none. With
	// two-phase job commit the job stays pending on the coordinator until
	// AcceptJob.
	RequestJob(ctx context.Context) (*coordinator.Job, error)
	// AcceptJob accepts an acquired job (two-phase commit, PUT
	// state=running); an error wrapping coordinator.ErrJobNotAccepted means
	// the job is not ours (canceled, re-queued, held by another manager).
	AcceptJob(ctx context.Context, jobID int64, jobToken config.Secret) error
	// JobStatus says whether the job is over (job token).
	JobStatus(ctx context.Context, jobToken config.Secret) (coordinator.JobState, error)
	// AppendTrace writes data into the job log at offset (resyncing on
	// 416) and returns the new stored size.
	AppendTrace(ctx context.Context, jobID int64, jobToken config.Secret, offset int64, data []byte) (int64, error)
	// FailJob reports the job failed; a job already over is a success.
	FailJob(ctx context.Context, jobID int64, jobToken config.Secret, reason coordinator.FailureReason, exitCode int) error
	// ReadTrace reads the job log with a private token (trace watch).
	ReadTrace(ctx context.Context, privateToken config.Secret, projectID, jobID int64) ([]byte, error)
}

var _ Coordinator = (*coordinator.Client)(nil)

// RunnerFactory builds the executor and coordinator client of a runner added
// by Reload.
type RunnerFactory func(r *config.Runner) (executors.Executor, Coordinator, error)

// Tuning holds the dispatcher's internal delays and pool sizes; zero fields
// take their defaults. Tests scale them down.
type Tuning struct {
	// MaxBackoff caps every retry back-off (poll errors, rejected runner
	// tokens, failure reports, decommissions). Default 5 min.
	MaxBackoff time.Duration
	// ProvisionTimeout bounds one Provision, Launch, Adopt or Decommission
	// call. Default 15 min.
	ProvisionTimeout time.Duration
	// CallTimeout bounds one coordinator or listing call. Default 2 min.
	CallTimeout time.Duration
	// CheckWorkers bounds concurrent status checks, trace reads and
	// reports. Default 16.
	CheckWorkers int
	// DecommissionWorkers bounds concurrent deletions. Default 8.
	DecommissionWorkers int
	// FailJobExitCode is the exit_code sent with launch failure reports.
	// Default 1.
	FailJobExitCode int
}

func (t Tuning) withDefaults() Tuning {
	if t.MaxBackoff <= 0 {
		t.MaxBackoff = 5 * time.Minute
	}
	if t.ProvisionTimeout <= 0 {
		t.ProvisionTimeout = 15 * time.Minute
	}
	if t.CallTimeout <= 0 {
		t.CallTimeout = 2 * time.Minute
	}
	if t.CheckWorkers <= 0 {
		t.CheckWorkers = 16
	}
	if t.DecommissionWorkers <= 0 {
		t.DecommissionWorkers = 8
	}
	if t.FailJobExitCode == 0 {
		t.FailJobExitCode = 1
	}
	return t
}

// Options are the dependencies of a Dispatcher.
type Options struct {
	// Logger receives the dispatcher's logs (default: discarded).
	Logger logrus.FieldLogger
	// Store persists tracked jobs (default: state.NewMemory()).
	Store state.Store
	// Executors maps runner short ids (config.Runner.ShortID) to their
	// executor; one per configured runner.
	Executors map[string]executors.Executor
	// Coordinators maps runner short ids to their coordinator client.
	Coordinators map[string]Coordinator
	// NewRunner builds executors and clients for runners added by Reload;
	// nil disables adding runners on reload.
	NewRunner RunnerFactory
	// Clock is the time source (default RealClock{}).
	Clock Clock
	// Observer receives events for metrics (default NopObserver{}).
	Observer Observer
	// Force, when closed during a graceful shutdown, makes Run stop waiting
	// for in-flight launches: it flushes the store and returns at once.
	Force <-chan struct{}
	// Tuning scales internal delays (tests).
	Tuning Tuning

	// afterEvent is a test hook run by the owner after every event.
	afterEvent func(d *Dispatcher)
}

// Dispatcher polls coordinators and drives jobs; see the package doc.
// Create it with New or Assemble, run it with Run (once).
type Dispatcher struct {
	log    logrus.FieldLogger
	store  state.Store
	clock  Clock
	obs    Observer
	tuning Tuning
	force  <-chan struct{}
	hook   func(d *Dispatcher)
	newRun RunnerFactory

	events  chan func()
	ready   chan struct{} // closed once restored and polling
	exited  chan struct{} // closed when the owner loop has returned
	wg      sync.WaitGroup
	snap    atomic.Pointer[Snapshot]
	started atomic.Bool

	// Everything below is owned by the owner goroutine (Run).
	cfg      *config.Config
	ledger   *quota.Ledger
	runners  map[string]*runner // by short id, including removed runners
	order    []*runner          // polling order (config order)
	jobs     map[state.Key]*job
	timers   timerHeap
	timerSeq uint64
	pools    [numClasses]pool
	critical int // critical operations in flight
	opCtx    context.Context
	stopping bool
	dirty    bool

	lastPublish time.Time
	publishGap  time.Duration // current minimum interval between publications

	quotaKnown  bool
	quotaTries  time.Duration
	lastCycle   time.Time
	cycleTimer  *timerRef
	cycles      int64
	recentGone  map[string]time.Time // resource names deleted recently (reconciliation guard)
	reconciling map[string]time.Time // runner id → listing start
}

// New builds a dispatcher for cfg. Executors and Coordinators must hold an
// entry for every runner of cfg (keyed by short id).
func New(cfg *config.Config, opts Options) (*Dispatcher, error) {
	if cfg == nil {
		return nil, errors.New("new dispatcher: nil config")
	}
	d := &Dispatcher{
		log:         opts.Logger,
		store:       opts.Store,
		clock:       opts.Clock,
		obs:         opts.Observer,
		tuning:      opts.Tuning.withDefaults(),
		force:       opts.Force,
		hook:        opts.afterEvent,
		newRun:      opts.NewRunner,
		events:      make(chan func(), 1024),
		exited:      make(chan struct{}),
		ready:       make(chan struct{}),
		cfg:         cfg,
		runners:     map[string]*runner{},
		jobs:        map[state.Key]*job{},
		recentGone:  map[string]time.Time{},
		reconciling: map[string]time.Time{},
	}
	if d.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		d.log = l
	}
	if d.store == nil {
		d.store = state.NewMemory()
	}
	if d.clock == nil {
		d.clock = RealClock{}
	}
	if d.obs == nil {
		d.obs = NopObserver{}
	}
	d.ledger = quota.NewLedger(d.limits(cfg, 0))
	var errs []error
	for i := range cfg.Runners {
		rc := cfg.Runners[i]
		id := rc.ShortID()
		if _, dup := d.runners[id]; dup {
			errs = append(errs, fmt.Errorf("runners[%d]: same url and token as another runner", i))
			continue
		}
		ex, ok := opts.Executors[id]
		if !ok || ex == nil {
			errs = append(errs, fmt.Errorf("runners[%d] (%s): no executor", i, rc.Label()))
			continue
		}
		co, ok := opts.Coordinators[id]
		if !ok || co == nil {
			errs = append(errs, fmt.Errorf("runners[%d] (%s): no coordinator client", i, rc.Label()))
			continue
		}
		r := d.newRunner(rc, ex, co)
		d.runners[id] = r
		d.order = append(d.order, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new dispatcher: %w", err)
	}
	d.pools[classCheck].limit = d.tuning.CheckWorkers
	d.pools[classDecommission].limit = d.tuning.DecommissionWorkers
	d.pools[classLaunch].limit = max(cfg.PaasMaxConcurrentProvisioning, 1)
	d.publish()
	return d, nil
}

// limits derives the ledger limits from cfg, with the given weighted quota.
func (d *Dispatcher) limits(cfg *config.Config, weightQuota float64) quota.Limits {
	return quota.Limits{
		WeightQuota:      weightQuota,
		MaxJobs:          cfg.Concurrent,
		MaxProvisioning:  cfg.PaasMaxConcurrentProvisioning,
		MinLaunchSpacing: cfg.PaasMinSecondsBetweenLaunches.Duration(),
	}
}

// Reload applies a new configuration (SIGHUP): limits change at once,
// added runners start polling (when Options.NewRunner is set), removed
// runners stop polling but their jobs are still watched and decommissioned.
// It is safe from any goroutine; before Run it applies at start.
func (d *Dispatcher) Reload(cfg *config.Config) {
	if cfg == nil {
		return
	}
	d.send(func() { d.applyConfig(cfg) })
}

// Ready returns a channel closed once Run has restored the persisted jobs
// and started polling (for sd_notify READY=1).
func (d *Dispatcher) Ready() <-chan struct{} { return d.ready }

// Stopped returns a channel closed once Run has returned.
func (d *Dispatcher) Stopped() <-chan struct{} { return d.exited }

// Run restores persisted jobs, reconciles, then polls and drives jobs until
// ctx is cancelled; it then shuts down gracefully (see the package doc) and
// returns nil. It returns an error only when it cannot start (unreadable
// state). Run may be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("run dispatcher: already started")
	}
	defer close(d.exited)
	opCtx, cancelOps := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelOps()
	d.opCtx = opCtx

	file, err := d.store.Load()
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	d.logStart()
	d.restore(file)
	d.computeQuota()
	d.at(d.clock.Now(), d.reconcile)
	d.cycleTimer = d.after(0, d.cycle)
	d.publish()
	close(d.ready)

	timer := d.clock.NewTimer(time.Hour)
	defer timer.Stop()
	var armed time.Time
	var shutdownC <-chan time.Time
	done := ctx.Done()
	var forceC <-chan struct{}
	forced := false
loop:
	for !d.stopping || d.critical > 0 {
		next, ok := d.nextTimer()
		if d.dirty {
			if at := d.lastPublish.Add(d.publishGap); !ok || at.Before(next) {
				next, ok = at, true
			}
		}
		if ok && !next.Equal(armed) {
			armed = next
			timer.Reset(max(next.Sub(d.clock.Now()), 0))
		}
		select {
		case fn := <-d.events:
			fn()
			d.afterEvent()
		case <-timer.C():
			armed = time.Time{}
			d.fireTimers()
		case <-done:
			done = nil
			d.beginStop()
			cancelOps()
			st := d.clock.NewTimer(d.cfg.ShutdownTimeout.Duration())
			defer st.Stop()
			shutdownC = st.C()
			forceC = d.force
		case <-shutdownC:
			d.log.WithField("in_flight", d.critical).Warn("shutdown timeout reached with launches in flight; their jobs resume after restart")
			break loop
		case <-forceC:
			forced = true
			d.log.Warn("forced shutdown: flushing state and exiting")
			break loop
		}
		if d.dirty && len(d.events) == 0 && d.clock.Now().Sub(d.lastPublish) >= d.publishGap {
			d.publish()
		}
	}
	if !forced {
		d.drainOperations()
	}
	d.publish()
	flushTimeout := d.tuning.CallTimeout
	if forced {
		flushTimeout = 5 * time.Second
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if err := d.store.Sync(fctx); err != nil {
		d.log.WithError(err).Error("flush state at shutdown failed")
	}
	d.log.WithField("jobs", len(d.jobs)).Info("dispatcher stopped; tracked jobs are persisted and resume at next start")
	return nil
}

// operationsGrace bounds how long Run waits, after its loop, for the
// operations still running (cancelled ones return at once).
const operationsGrace = 2 * time.Second

// drainOperations lets operations still in flight finish (up to
// operationsGrace), applying their results, so that Run leaves no goroutine
// behind in the common case.
func (d *Dispatcher) drainOperations() {
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	grace := d.clock.NewTimer(operationsGrace)
	defer grace.Stop()
	for {
		select {
		case fn := <-d.events:
			fn()
			d.afterEvent()
		case <-done:
			for len(d.events) > 0 {
				fn := <-d.events
				fn()
				d.afterEvent()
			}
			return
		case <-grace.C():
			d.log.Warn("operations still running at exit; their jobs resume after restart")
			return
		}
	}
}

// beginStop starts a graceful shutdown (owner only): no new polls or
// launches; queued operations are dropped (their jobs are persisted).
func (d *Dispatcher) beginStop() {
	d.stopping = true
	d.dirty = true
	for i := range d.pools {
		d.pools[i].queue = nil
	}
	d.log.WithField("in_flight", d.critical).Info("shutting down: polling stopped, waiting for in-flight launches")
}

// afterEvent runs after every event and timer callback (owner only).
func (d *Dispatcher) afterEvent() {
	d.dirty = true
	if d.hook != nil {
		d.hook(d)
	}
}

// logStart logs the runners and how real start is detected for each.
func (d *Dispatcher) logStart() {
	for _, r := range d.order {
		l := d.log.WithFields(logrus.Fields{"runner": r.label, "executor": r.exec.Kind()})
		if r.watch() {
			l.Info("runner configured; real start is detected by watching the job log (paas_job_trace_watch)")
		} else {
			l.Info("runner configured; real-start detection is OFF (no paas_job_trace_watch token): a job counts as started once launched")
		}
	}
}

// computeQuota computes the weighted quota from [quota_computation] (it may
// need the reference runner's flavor list, hence an operation), retrying
// with back-off until it succeeds. Until then nothing is admitted.
func (d *Dispatcher) computeQuota() {
	qc := d.cfg.QuotaComputation
	if qc == nil {
		d.log.Warn("no [quota_computation]: the weighted quota is unlimited, only concurrent and paas_max_concurrent_provisioning apply")
		d.setQuota(0)
		return
	}
	var ref *runner
	for _, r := range d.order {
		if r.cfg.Name == qc.ReferenceRunner && !r.removed {
			ref = r
		}
	}
	if ref == nil {
		d.log.WithField("reference_runner", qc.ReferenceRunner).Error("quota_computation.reference_runner names no configured runner; nothing will be admitted")
		return
	}
	ex, flavor, n := ref.exec, qc.ReferenceFlavor, qc.ReferenceJobsCount
	d.op(classCheck, func(ctx context.Context) func() {
		fl, err := ex.Flavors(ctx)
		var q float64
		if err == nil {
			q, err = quota.Quota(fl, flavor, n)
		}
		return func() {
			if err != nil {
				d.quotaTries = backoff(d.quotaTries, d.cfg.CheckInterval.Duration(), d.tuning.MaxBackoff)
				d.log.WithError(err).WithField("retry_in", d.quotaTries).Error("compute weighted quota failed; nothing is admitted until it succeeds")
				d.after(d.quotaTries, d.computeQuota)
				return
			}
			d.setQuota(q)
		}
	})
}

func (d *Dispatcher) setQuota(q float64) {
	d.quotaKnown = true
	d.quotaTries = 0
	d.ledger.SetLimits(d.limits(d.cfg, q))
	d.log.WithField("weight_quota", q).Info("weighted quota set")
	d.wake()
}

// applyConfig applies a reloaded configuration (owner only).
func (d *Dispatcher) applyConfig(cfg *config.Config) {
	old := d.ledger.Limits()
	d.cfg = cfg
	d.ledger.SetLimits(d.limits(cfg, old.WeightQuota))
	d.pools[classLaunch].limit = max(cfg.PaasMaxConcurrentProvisioning, 1)
	seen := map[string]bool{}
	var order []*runner
	for i := range cfg.Runners {
		rc := cfg.Runners[i]
		id := rc.ShortID()
		seen[id] = true
		if r, ok := d.runners[id]; ok {
			r.cfg = rc
			r.label = rc.Label()
			if r.removed {
				r.removed = false
				d.log.WithField("runner", r.label).Info("runner re-added by reload")
			}
			order = append(order, r)
			continue
		}
		if d.newRun == nil {
			d.log.WithField("runner", rc.Label()).Error("reload: cannot add a runner without restarting (no runner factory)")
			continue
		}
		ex, co, err := d.newRun(&rc)
		if err != nil {
			d.log.WithError(err).WithField("runner", rc.Label()).Error("reload: build runner failed; runner skipped")
			continue
		}
		r := d.newRunner(rc, ex, co)
		d.runners[id] = r
		order = append(order, r)
		d.log.WithField("runner", r.label).Info("runner added by reload")
	}
	for id, r := range d.runners {
		if !seen[id] && !r.removed {
			r.removed = true
			d.log.WithField("runner", r.label).Info("runner removed by reload: no more polling; its jobs are still watched and decommissioned")
		}
	}
	d.order = order
	d.computeQuota()
	d.wake()
}
