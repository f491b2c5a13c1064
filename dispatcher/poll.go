package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

// runner is the owner's view of one [[runners]] section.
type runner struct {
	cfg   config.Runner
	id    string // short id
	label string
	exec  executors.Executor
	coord Coordinator
	log   logrus.FieldLogger

	removed  bool
	polling  bool // a request is in flight
	blocked  bool // last poll attempt was refused by the ledger
	tooHeavy bool // its largest job exceeds the whole quota (logged once)
	// watchRejected: the trace-watch token was refused (logged once).
	watchRejected bool
	maxWeight     float64
	maxKnown      bool

	backoff      time.Duration
	backoffUntil time.Time
	forbidden    bool // the token was rejected (403); logged once
	lastError    string
	pollTimer    *timerRef
}

func (d *Dispatcher) newRunner(rc config.Runner, ex executors.Executor, co Coordinator) *runner {
	id := rc.ShortID()
	return &runner{
		cfg: rc, id: id, label: rc.Label(), exec: ex, coord: co,
		log: d.log.WithFields(logrus.Fields{"runner": rc.Label(), "executor": rc.Executor}),
	}
}

// watch reports whether real start is detected by watching the trace.
func (r *runner) watch() bool {
	return r.cfg.TraceWatch != nil && !r.cfg.TraceWatch.Token.IsZero()
}

func (r *runner) watchTimeout() time.Duration {
	if r.cfg.TraceWatch == nil || r.cfg.TraceWatch.TimeoutSeconds <= 0 {
		return config.Seconds(config.DefaultTraceWatchTimeout).Duration()
	}
	return r.cfg.TraceWatch.TimeoutSeconds.Duration()
}

func (r *runner) watchStep() time.Duration {
	if r.cfg.TraceWatch == nil || r.cfg.TraceWatch.PollStep <= 0 {
		return config.Seconds(config.DefaultTraceWatchPollStep).Duration()
	}
	return r.cfg.TraceWatch.PollStep.Duration()
}

func (r *runner) watchFailureReason() coordinator.FailureReason {
	if r.cfg.TraceWatch == nil || r.cfg.TraceWatch.FailureReason == "" {
		return coordinator.FailureReason(config.DefaultTraceWatchFailureReason)
	}
	return coordinator.FailureReason(r.cfg.TraceWatch.FailureReason)
}

func pollKey(r *runner) string { return "poll:" + r.id }

// saturated reports whether the job or weight limit is reached.
func (d *Dispatcher) saturated() bool {
	s := d.ledger.Snapshot()
	return (s.MaxJobs > 0 && s.Jobs >= s.MaxJobs) || (s.WeightQuota > 0 && s.WeightUsed >= s.WeightQuota)
}

// cycle is one poll cycle: every runner not busy or backed off is polled if
// the ledger can admit its largest job; the statistics line is logged and
// the next cycle scheduled (check_interval, or job_progress_poll_interval
// when saturated).
func (d *Dispatcher) cycle() {
	if d.stopping {
		return
	}
	d.cycles++
	d.lastCycle = d.clock.Now()
	for _, r := range d.order {
		d.maybePoll(r)
	}
	if d.cfg.PaasLogStatistics {
		d.logStatistics()
	}
	interval := d.cfg.CheckInterval.Duration()
	if d.saturated() {
		interval = d.cfg.JobProgressPollInterval.Duration()
		d.log.WithField("duration", interval).Debug("limits reached: next poll cycle after job_progress_poll_interval")
	}
	d.cycleTimer.cancel()
	d.cycleTimer = d.after(interval, d.cycle)
}

// wake brings the next poll cycle forward after capacity was freed, never
// closer than check_interval after the previous cycle (owner only).
func (d *Dispatcher) wake() {
	if d.stopping || d.cycleTimer == nil || d.cycleTimer.cancelled {
		return
	}
	blocked := false
	for _, r := range d.order {
		blocked = blocked || r.blocked || !d.quotaKnown
	}
	if !blocked {
		return
	}
	at := d.lastCycle.Add(d.cfg.CheckInterval.Duration())
	if at.Before(d.cycleTimer.at) {
		d.cycleTimer.cancel()
		d.cycleTimer = d.at(at, d.cycle)
	}
}

// maybePoll starts a job request for r if it is idle, not backed off and
// the ledger admits a poll slot of its largest job weight (owner only).
func (d *Dispatcher) maybePoll(r *runner) {
	if d.stopping || r.removed || r.polling || !d.quotaKnown {
		return
	}
	now := d.clock.Now()
	if now.Before(r.backoffUntil) {
		return
	}
	ex := r.exec
	if !r.maxKnown {
		r.polling = true
		d.op(classPoll, func(ctx context.Context) func() {
			mw, err := ex.MaxWeight(ctx)
			return func() {
				r.polling = false
				if err != nil {
					d.pollFailed(r, err)
					return
				}
				r.maxWeight, r.maxKnown = mw, true
				d.maybePoll(r)
			}
		})
		return
	}
	if err := d.ledger.Reserve(pollKey(r), r.maxWeight); err != nil {
		if q := d.ledger.Limits().WeightQuota; q > 0 && r.maxWeight > q && !r.tooHeavy {
			r.tooHeavy = true
			r.log.WithFields(logrus.Fields{"weight": r.maxWeight, "weight_quota": q}).
				Error("this runner's largest job weighs more than the whole weighted quota: it is never polled (lower cc_max_flavor or raise [quota_computation])")
		}
		if !r.blocked {
			r.log.WithError(err).WithField("weight", r.maxWeight).Debug("not polling: no room for this runner's largest job")
		}
		r.blocked = true
		return
	}
	r.blocked = false
	r.polling = true
	co, store, clock, rc := r.coord, d.store, d.clock, r.cfg
	d.op(classPoll, func(ctx context.Context) func() {
		j, err := co.RequestJob(ctx)
		var (
			w    float64
			werr error
			serr error
		)
		if mj, ok := errors.AsType[*coordinator.MalformedJobError](err); ok {
			// Assigned to us but undecodable: track it like a job whose
			// flavor cannot be served, so it is reported failed with a
			// readable line instead of hanging until GitLab times it out.
			j, werr, err = malformedJob(mj), malformedJobError(mj), nil
		}
		if err == nil && j != nil {
			// Two-phase commit: the coordinator assigned the job but
			// holds it pending until we accept it. Record it durably
			// first, then accept (owner): a crash before the accept leaves
			// the job to be re-queued by the coordinator, one after it
			// finds the record (the owner completes it).
			store.Put(intentRecord(&rc, j, clock.Now()))
			serr = store.Sync(ctx)
			if werr == nil {
				w, werr = ex.ExpectedWeight(ctx, j)
			}
		}
		mw, mwErr := ex.MaxWeight(ctx)
		return func() {
			r.polling = false
			if mwErr == nil {
				r.maxWeight = mw
			}
			if serr != nil {
				d.notPersisted(r, j, serr)
				j = nil
			}
			d.polled(r, j, err, w, werr)
		}
	})
}

// polled handles the outcome of one job request (owner only).
func (d *Dispatcher) polled(r *runner, j *coordinator.Job, err error, w float64, werr error) {
	if err != nil {
		d.releaseKey(pollKey(r))
		if errors.Is(err, coordinator.ErrMalformedJob) {
			// The coordinator assigned a job whose id and token cannot even
			// be read (a readable one is tracked and failed, see
			// malformedJob): it cannot be accepted nor reported, so the
			// coordinator re-queues it and finally fails it as stuck. The
			// runner itself is fine: poll on.
			r.log.WithError(err).Error("acquired a job whose payload cannot be decoded, not even its id and token; it cannot be accepted nor reported and is left to the coordinator")
			return
		}
		d.pollFailed(r, err)
		return
	}
	if r.forbidden {
		r.log.Info("runner token accepted again")
	}
	r.backoff, r.forbidden, r.lastError = 0, false, ""
	if j == nil {
		d.releaseKey(pollKey(r))
		return
	}
	d.acquired(r, j, w, werr)
	d.maybePoll(r) // a runner that just gave a job is re-polled immediately
}

// notPersisted drops a job just acquired whose intent record could not be
// made durable (owner only): it is never accepted, so the coordinator gives
// it back to the queue after its accept timeout; accepting it would risk
// losing it in a crash.
func (d *Dispatcher) notPersisted(r *runner, j *coordinator.Job, err error) {
	key := state.Key{Runner: r.id, JobID: j.ID}
	if old, dup := d.jobs[key]; dup {
		d.put(old) // the polling operation wrote its intent over it
	} else {
		d.store.Delete(key)
	}
	r.log.WithError(err).WithField("job_id", j.ID).
		Error("persisting an acquired job failed; not accepting it (the coordinator re-queues it)")
}

// pollFailed backs the runner off (owner only): a rejected token (403)
// exponentially up to MaxBackoff and logged once; transient errors with
// jitter. Other runners are unaffected.
func (d *Dispatcher) pollFailed(r *runner, err error) {
	if d.stopping && errors.Is(err, context.Canceled) {
		return
	}
	r.backoff = backoff(r.backoff, d.cfg.CheckInterval.Duration(), d.tuning.MaxBackoff)
	wait := r.backoff
	var he *coordinator.HTTPError
	if errors.As(err, &he) && he.RetryAfter > wait {
		wait = he.RetryAfter // the coordinator asked for it (429, 503)
	}
	r.backoffUntil = d.clock.Now().Add(wait)
	r.lastError = err.Error()
	l := r.log.WithError(err).WithField("retry_in", wait.Round(time.Millisecond))
	if statusOf(err) == http.StatusForbidden {
		if !r.forbidden {
			l.Error("coordinator rejected the runner token (403); backing this runner off, the others continue")
		}
		r.forbidden = true
	} else {
		l.Warn("job request failed; backing this runner off")
	}
	r.pollTimer.cancel()
	r.pollTimer = d.at(r.backoffUntil, func() { d.maybePoll(r) })
}

// statistics is the "JSON statistics:" line (reference §11.3 keys).
type statistics struct {
	WeightQuota           float64 `json:"weight_quota"`
	CurrentWeight         float64 `json:"current_weight"`
	WeightHeadroom        float64 `json:"weight_headroom"`
	CanTakeJob            bool    `json:"can_take_job"`
	MaxJobsInProvisioning int     `json:"max_jobs_in_provisioning"`
	JobsInProvisioning    int     `json:"jobs_in_provisioning"`
	CurrentConcurrentJobs int     `json:"current_concurrent_jobs"`
	MaxConcurrentJobs     int     `json:"max_concurrent_jobs"`
}

func (d *Dispatcher) statistics() statistics {
	s := d.ledger.Snapshot()
	st := statistics{
		WeightQuota:           s.WeightQuota,
		CurrentWeight:         s.WeightUsed,
		WeightHeadroom:        s.WeightQuota - s.WeightUsed,
		MaxJobsInProvisioning: s.MaxProvisioning,
		JobsInProvisioning:    s.Provisioning,
		CurrentConcurrentJobs: s.Jobs,
		MaxConcurrentJobs:     s.MaxJobs,
	}
	minW := -1.0
	for _, r := range d.order {
		if r.removed || !r.maxKnown {
			continue
		}
		if minW < 0 || r.maxWeight < minW {
			minW = r.maxWeight
		}
	}
	st.CanTakeJob = d.quotaKnown && minW >= 0 && d.ledger.CanAdmit(minW) == nil
	return st
}

func (d *Dispatcher) logStatistics() {
	b, err := json.Marshal(d.statistics())
	if err != nil {
		return
	}
	d.log.Info("JSON statistics: " + string(b))
}

// malformedJob is the minimal job tracked for a payload that could not be
// decoded: its id and token, and a payload holding only the id (the state
// file must stay valid JSON).
func malformedJob(mj *coordinator.MalformedJobError) *coordinator.Job {
	return &coordinator.Job{
		ID:    mj.ID,
		Token: mj.Token,
		Raw:   json.RawMessage(strconv.AppendInt([]byte(`{"id":`), mj.ID, 10)),
	}
}

// malformedJobError is the failure reported for an undecodable payload.
// The decoding error names fields and types, never values.
func malformedJobError(mj *coordinator.MalformedJobError) error {
	return &executors.JobError{
		Public: "paas-runner could not read this job's definition sent by GitLab (" + mj.Err.Error() + "); it cannot run it",
		Reason: coordinator.RunnerUnsupported,
		Cause:  mj,
	}
}
