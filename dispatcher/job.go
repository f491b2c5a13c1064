package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
	"gitlab.com/paas-runner/paas-runner/state"
)

// appendAtEnd is the trace offset used to append after whatever the job log
// holds: the coordinator answers 416 with the stored size and the client
// resyncs to it.
const appendAtEnd = math.MaxInt32

// lane is one of a job's independent activities; each has at most one
// operation in flight and one pending timer.
type lane int

const (
	// laneMain: restore, adopt, provision, launch, watch, finish checks.
	laneMain lane = iota
	// laneReport: the failure report owed to the coordinator.
	laneReport
	// laneDecom: the resource deletion.
	laneDecom
	numLanes
)

// job is the owner's record of one tracked job.
type job struct {
	rec       state.Job // persisted form (Put after every change)
	key       state.Key
	r         *runner          // nil: its runner is not configured any more
	payload   *coordinator.Job // nil once launched (or when lost)
	res       executors.Resource
	ledgerKey string
	inLedger  bool
	log       logrus.FieldLogger

	busy  [numLanes]bool
	timer [numLanes]*timerRef
	gone  bool // no longer tracked

	launchStart    time.Time
	resSince       time.Time
	checkEvery     time.Duration
	watchDeadline  time.Time
	mainBackoff    time.Duration
	reportBackoff  time.Duration
	decomBackoff   time.Duration
	decomSince     time.Time
	decomAttempts  int
	reportAttempts int
	lineWritten    bool
	decommissioned bool
	lastError      string
	// fresh: acquired by this process, its acquisition not yet counted
	// (it is, once accepted).
	fresh bool
	// reassigned: handed out to us again while its accept was in flight;
	// a refusal of that accept is answered by accepting again.
	reassigned bool
}

func (d *Dispatcher) newJob(rec state.Job, r *runner) *job {
	j := &job{rec: rec, key: rec.Key(), r: r, ledgerKey: "job:" + rec.Runner + ":" + strconv.FormatInt(rec.JobID, 10)}
	fields := logrus.Fields{"job_id": rec.JobID}
	if r != nil {
		j.log = r.log.WithFields(fields)
	} else {
		fields["runner"] = rec.Runner
		j.log = d.log.WithFields(fields)
	}
	return j
}

func (j *job) label() string {
	if j.r != nil {
		return j.r.label
	}
	return j.rec.Runner
}

func (j *job) token() config.Secret { return config.Secret(j.rec.Token) }

func (j *job) spec() executors.JobSpec {
	return executors.JobSpec{Job: j.payload, ResourceName: j.rec.ResourceName}
}

func (j *job) setTimer(l lane, t *timerRef) {
	j.timer[l].cancel()
	j.timer[l] = t
}

// put persists the job's record (in memory; the store coalesces writes).
func (d *Dispatcher) put(j *job) {
	if !j.gone {
		d.store.Put(j.rec)
	}
}

func jobFlavor(p *coordinator.Job) string {
	if p == nil {
		return ""
	}
	v, _ := p.Variable(quota.FlavorVariable)
	return v
}

// acquired starts tracking a job just acquired from r (owner only). The
// runner's poll slot (reserved at its largest weight) becomes the job's
// ledger entry at its expected weight.
func (d *Dispatcher) acquired(r *runner, p *coordinator.Job, w float64, werr error) {
	key := state.Key{Runner: r.id, JobID: p.ID}
	if old, dup := d.jobs[key]; dup {
		if old.rec.AcceptPending {
			// Re-queued and handed to us again while the accept owed by
			// the tracked record is in flight: a refusal of that accept
			// (sent before this assignment) must not drop the job.
			old.reassigned = true
			r.log.WithField("job_id", p.ID).Info("coordinator handed out again a job whose accept is in flight")
		} else {
			r.log.WithField("job_id", p.ID).Error("coordinator handed out a job already tracked; ignoring the duplicate")
		}
		d.releaseKey(pollKey(r))
		d.put(old) // the polling operation recorded an intent over it
		return
	}
	now := d.clock.Now()
	rec := intentRecord(&r.cfg, p, now)
	rec.ExpectedWeight = w
	j := d.newJob(rec, r)
	j.payload = p
	j.launchStart = now
	j.fresh = true
	d.jobs[key] = j
	if werr != nil {
		d.releaseKey(pollKey(r))
		j.fresh = false // acquired but not admitted: not counted
		d.put(j)
		// Accept it all the same, so that its failure and the reason
		// can be written into its log.
		d.accept(j, func(j *job) {
			j.log.WithError(werr).Warn("job acquired but its flavor cannot be served")
			d.launchFailed(j, werr, "", "")
		})
		return
	}
	if err := d.ledger.Rekey(pollKey(r), j.ledgerKey); err != nil {
		j.log.WithError(err).Error("ledger rekey failed; reserving the job directly")
		d.releaseKey(pollKey(r))
		if err := d.ledger.ForceReserve(j.ledgerKey, w); err != nil {
			j.log.WithError(err).Error("ledger reserve failed")
		}
	}
	j.inLedger = true
	if err := d.ledger.Adjust(j.ledgerKey, w); err != nil {
		j.log.WithError(err).Error("ledger adjust failed")
	}
	d.put(j)
	d.accept(j, d.scheduleProvision)
}

// accept sends the two-phase accept of a job whose intent record is durable
// (AcceptPending), then runs next. A job the coordinator does not give us
// (canceled, re-queued, another manager's) is dropped; when the accept
// fails transiently even after retries, the job's status tells whether it
// landed (see confirmAccept). Never cancelled in flight: an accept that
// landed is recorded even during shutdown.
func (d *Dispatcher) accept(j *job, next func(*job)) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	j.busy[laneMain] = true
	co, id, tok := j.r.coord, j.rec.JobID, j.token()
	d.op(classPoll, func(ctx context.Context) func() {
		err := co.AcceptJob(ctx, id, tok)
		return func() {
			j.busy[laneMain] = false
			if j.gone {
				return
			}
			switch {
			case err == nil:
				d.accepted(j, next)
			case d.stopping:
				// The record keeps AcceptPending: the next start
				// accepts again (a keep-alive if this one landed).
			case errors.Is(err, coordinator.ErrJobNotAccepted):
				j.log.WithError(err).Info("the coordinator did not give us this job (canceled, or back in its queue); dropping it")
				d.notOurs(j, next)
			default:
				j.log.WithError(err).Warn("accepting the job failed; asking the coordinator whether the accept landed")
				d.confirmAccept(j, next)
			}
		}
	})
}

// confirmAccept reads the status of a job whose accept failed transiently:
// running (or canceling) means the accept landed and the job is ours;
// pending or over means it did not, and the job is dropped (the coordinator
// re-queues it; accepting it later could run it twice). The accept is
// never re-sent. A failed read is retried with back-off.
func (d *Dispatcher) confirmAccept(j *job, next func(*job)) {
	d.withStatus(j, func(st coordinator.JobState, err error) {
		switch {
		case err == nil && (st.Status == "running" || st.Status == "canceling"):
			j.log.WithField("status", st.Status).Info("the accept landed after all")
			d.accepted(j, next)
		case err == nil || jobGone(err):
			j.log.WithField("status", st.Status).Info("the accept did not land; dropping the job (the coordinator re-queues it)")
			d.notOurs(j, next)
		default:
			d.retryMain(j, fmt.Errorf("read status of a job whose accept failed: %w", err), func(j *job) { d.confirmAccept(j, next) })
		}
	})
}

// withStatus reads the job's status on the coordinator in the main lane,
// then runs handle in the owner goroutine unless the job is gone or the
// dispatcher is stopping meanwhile.
func (d *Dispatcher) withStatus(j *job, handle func(coordinator.JobState, error)) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	j.busy[laneMain] = true
	co, tok := j.r.coord, j.token()
	d.op(classCheck, func(ctx context.Context) func() {
		st, err := co.JobStatus(ctx, tok)
		return func() {
			j.busy[laneMain] = false
			if j.gone || d.stopping {
				return
			}
			handle(st, err)
		}
	})
}

// notOurs drops a job whose accept was refused or did not land, unless the
// coordinator handed it to us again meanwhile: then it is accepted again.
func (d *Dispatcher) notOurs(j *job, next func(*job)) {
	if j.reassigned {
		j.reassigned = false
		j.log.Info("the job was handed to us again meanwhile; accepting it again")
		d.accept(j, next)
		return
	}
	d.dropUnaccepted(j)
}

// accepted records that the job is ours and runs next.
func (d *Dispatcher) accepted(j *job, next func(*job)) {
	j.rec.AcceptPending = false
	j.reassigned = false
	j.mainBackoff = 0
	d.put(j)
	if j.fresh {
		j.fresh = false
		flavor := j.rec.Flavor
		if flavor == "" {
			flavor = "default"
		}
		d.obs.JobAcquired(j.label(), flavor)
		j.log.WithFields(logrus.Fields{"weight": j.rec.ExpectedWeight, "resource_name": j.rec.ResourceName}).Info("job acquired")
	} else {
		j.log.Info("job accepted")
	}
	if d.stopping {
		return
	}
	next(j)
}

// dropUnaccepted stops tracking a job the coordinator did not give us:
// nothing is reported, its quota is released.
func (d *Dispatcher) dropUnaccepted(j *job) {
	j.setTimer(laneMain, nil)
	j.rec.Phase = state.PhaseDecommissioning
	j.rec.FinishedAt = d.clock.Now()
	j.rec.Payload = nil
	j.payload = nil
	d.keepOrDecommission(j, false)
	d.put(j)
	d.maybeForget(j)
}

// intentRecord is the record of a job just acquired: pending, not yet
// accepted, with the name of the resource about to be created and the
// payload to launch it.
func intentRecord(r *config.Runner, p *coordinator.Job, now time.Time) state.Job {
	return state.Job{
		AcceptPending: true,
		Runner:        r.ShortID(),
		JobID:         p.ID,
		Token:         p.Token.Reveal(),
		ProjectID:     p.JobInfo.ProjectID,
		Flavor:        jobFlavor(p),
		Phase:         state.PhasePending,
		ResourceName:  executors.ResourceName(r, p.ID),
		Payload:       p.Raw,
		AcquiredAt:    now,
	}
}

// scheduleProvision provisions now, or at the planned time when launches
// are spaced (paas_min_seconds_between_launches).
func (d *Dispatcher) scheduleProvision(j *job) {
	now := d.clock.Now()
	planned := d.ledger.PlanLaunch(now)
	if planned.After(now) {
		j.log.WithField("duration", planned.Sub(now)).Info("spacing launches: provisioning delayed")
		j.setTimer(laneMain, d.at(planned, func() { d.provision(j) }))
		return
	}
	d.provision(j)
}

// provision makes the intent durable (Sync) then creates the resource.
func (d *Dispatcher) provision(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	if j.launchStart.IsZero() {
		j.launchStart = d.clock.Now()
	}
	j.busy[laneMain] = true
	ex, spec := j.r.exec, j.spec()
	// Intent before action: the resource name in spec is already durable.
	// Every tracked job comes either from the polling operation, which
	// synced its intent record before accepting the job, or from the state
	// file itself; no second fsync is needed before the creating call.
	d.op(classLaunch, func(ctx context.Context) func() {
		res, err := ex.Provision(ctx, spec)
		return func() {
			j.busy[laneMain] = false
			d.provisioned(j, res, err)
		}
	})
}

// retryMain retries a main-lane step after a back-off.
func (d *Dispatcher) retryMain(j *job, err error, step func(*job)) {
	if d.stopping {
		return
	}
	j.mainBackoff = backoff(j.mainBackoff, d.cfg.CheckInterval.Duration(), d.tuning.MaxBackoff)
	j.lastError = err.Error()
	j.log.WithError(err).WithField("retry_in", j.mainBackoff).Warn("step failed; retrying")
	j.setTimer(laneMain, d.after(j.mainBackoff, func() { step(j) }))
}

func (d *Dispatcher) provisioned(j *job, res executors.Resource, err error) {
	if res != nil {
		d.setResource(j, res, state.PhaseProvisioned)
	}
	if err != nil && res == nil && !d.stopping {
		d.findAfterFailure(j, err)
		return
	}
	if err != nil {
		d.launchFailed(j, err, "", "")
		return
	}
	if res == nil {
		d.launchFailed(j, errors.New("executor returned no resource"), "", "")
		return
	}
	j.mainBackoff = 0
	j.log.WithFields(logrus.Fields{"resource_id": res.ID(), "weight": res.Weight()}).Info("resource provisioned")
	d.checkThen(j, d.launch)
}

// findAfterFailure looks, after a provisioning failure that returned no
// resource, for one created under the job's name anyway (an executor that
// failed late, a previous incarnation's call completing): it is recorded so
// that it is deleted with the failed job instead of waiting for
// reconciliation.
func (d *Dispatcher) findAfterFailure(j *job, cause error) {
	j.busy[laneMain] = true
	ex, name, p := j.r.exec, j.rec.ResourceName, j.payload
	d.op(classLaunch, func(ctx context.Context) func() {
		res, err := ex.Adopt(ctx, name, p)
		return func() {
			j.busy[laneMain] = false
			if err == nil && res != nil {
				j.log.WithField("resource_id", res.ID()).Warn("provisioning failed but left a resource under the job's name; deleting it with the job")
				d.setResource(j, res, state.PhaseProvisioned)
			}
			d.launchFailed(j, cause, "", "")
		}
	})
}

// setResource records the job's resource, corrects its weight in the
// ledger right away (reference §12 item 1) and persists it.
func (d *Dispatcher) setResource(j *job, res executors.Resource, phase state.Phase) {
	j.res = res
	if j.resSince.IsZero() {
		j.resSince = d.clock.Now()
	}
	if j.r != nil {
		dump, err := j.r.exec.Dump(res)
		if err != nil {
			j.log.WithError(err).Error("dump resource failed; it stays known by name only")
		} else {
			j.rec.Resource = dump
		}
	}
	j.rec.Weight = res.Weight()
	j.rec.Phase = phase
	if j.inLedger && res.Weight() > 0 {
		if res.Weight() != j.rec.ExpectedWeight {
			j.log.WithFields(logrus.Fields{"weight": res.Weight(), "expected_weight": j.rec.ExpectedWeight}).Warn("resource weight differs from expected; ledger corrected")
		}
		if err := d.ledger.Adjust(j.ledgerKey, res.Weight()); err != nil {
			j.log.WithError(err).Error("ledger adjust failed")
		}
	}
	d.put(j)
}

// jobOver reports whether a job in launch should stop: finished, canceled
// or being canceled on the coordinator.
func jobOver(st coordinator.JobState) bool {
	return st.Finished || st.Status == "canceling" || st.Status == "canceled"
}

// checkThen asks the coordinator whether the job is still wanted, then runs
// next; a canceled or finished job stops its launch instead. A failed check
// does not block the launch.
func (d *Dispatcher) checkThen(j *job, next func(*job)) {
	d.withStatus(j, func(st coordinator.JobState, err error) {
		switch {
		case err == nil && jobOver(st):
			d.stopLaunch(j, st.Status)
			return
		case jobGone(err):
			j.log.WithError(err).Warn("the coordinator no longer knows this job's token; stopping its launch")
			d.stopLaunch(j, "unknown")
			return
		case err != nil:
			j.log.WithError(err).Debug("job status check failed; continuing the launch")
		}
		next(j)
	})
}

// launch hands the job to its resource.
func (d *Dispatcher) launch(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	if j.payload == nil {
		d.launchFailed(j, errors.New("job payload lost"), "paas-runner lost this job's payload; please retry the job", coordinator.RunnerSystemFailure)
		return
	}
	j.busy[laneMain] = true
	ex, res, spec := j.r.exec, j.res, j.spec()
	d.op(classLaunch, func(ctx context.Context) func() {
		res2, err := ex.Launch(ctx, res, spec)
		return func() {
			j.busy[laneMain] = false
			d.launched(j, res2, err)
		}
	})
}

func (d *Dispatcher) launched(j *job, res executors.Resource, err error) {
	if err != nil {
		if res != nil {
			d.setResource(j, res, j.rec.Phase)
		}
		d.launchFailed(j, err, "", "")
		return
	}
	if res == nil {
		res = j.res
	}
	d.setResource(j, res, state.PhaseLaunched)
	j.rec.Payload = nil // launched: a restart never launches it again
	d.put(j)
	j.log.Info("job handed to its resource")
	if d.stopping {
		return
	}
	if j.r.watch() {
		d.startWatch(j)
		return
	}
	d.markStarted(j)
}

// startWatch waits for the job log to grow beyond what paas-runner wrote
// (paas_job_trace_watch), up to its timeout.
func (d *Dispatcher) startWatch(j *job) {
	j.watchDeadline = d.clock.Now().Add(j.r.watchTimeout())
	j.setTimer(laneMain, d.after(j.r.watchStep(), func() { d.watchTick(j) }))
}

func (d *Dispatcher) watchTick(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	j.busy[laneMain] = true
	co, tok, wtok := j.r.coord, j.token(), j.r.cfg.TraceWatch.Token
	project, id := j.rec.ProjectID, j.rec.JobID
	d.op(classCheck, func(ctx context.Context) func() {
		st, serr := co.JobStatus(ctx, tok)
		var (
			trace []byte
			terr  error
		)
		if serr != nil || !jobOver(st) {
			trace, terr = co.ReadTrace(ctx, wtok, project, id)
		}
		return func() {
			j.busy[laneMain] = false
			if j.gone || d.stopping {
				return
			}
			if serr == nil && jobOver(st) {
				d.stopLaunch(j, st.Status)
				return
			}
			if terr == nil && int64(len(trace)) > j.rec.TraceOffset {
				d.markStarted(j)
				return
			}
			if terr != nil {
				j.log.WithError(terr).Debug("read job log failed")
				if c := statusOf(terr); (c == 401 || c == 403) && !j.r.watchRejected {
					j.r.watchRejected = true
					j.r.log.WithError(terr).Error("the paas_job_trace_watch token cannot read job logs: launches will time out (it needs an administrator token with read_api)")
				}
			}
			if !d.clock.Now().Before(j.watchDeadline) {
				timeout := j.r.watchTimeout()
				msg := fmt.Sprintf("Job not active (no log) after %s seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
				d.launchFailed(j, nil, msg, j.r.watchFailureReason())
				return
			}
			j.setTimer(laneMain, d.after(j.r.watchStep(), func() { d.watchTick(j) }))
		}
	})
}

// markStarted: the job really runs. It leaves the provisioning count and
// its finish checks begin.
func (d *Dispatcher) markStarted(j *job) {
	now := d.clock.Now()
	if j.inLedger {
		if err := d.ledger.Started(j.ledgerKey); err != nil {
			j.log.WithError(err).Error("ledger started failed")
		}
	}
	j.rec.Phase = state.PhaseRunning
	j.rec.StartedAt = now
	j.rec.Payload = nil
	j.payload = nil
	d.put(j)
	if !j.launchStart.IsZero() {
		d.obs.LaunchSucceeded(j.label(), now.Sub(j.launchStart))
	}
	d.obs.JobStarted(j.label(), now.Sub(j.rec.AcquiredAt))
	j.log.Info("job started")
	j.checkEvery = d.cfg.CheckInterval.Duration()
	j.setTimer(laneMain, d.after(j.checkEvery, func() { d.finishCheck(j) }))
	d.wake()
}

// finishCheck asks the executor whether the resource still runs and the
// coordinator whether the job is over. Checks back off from check_interval
// to job_progress_poll_interval.
func (d *Dispatcher) finishCheck(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping || j.r == nil {
		return
	}
	j.busy[laneMain] = true
	ex, res, co, tok := j.r.exec, j.res, j.r.coord, j.token()
	d.op(classCheck, func(ctx context.Context) func() {
		live := executors.Status{Liveness: executors.LivenessUnknown}
		var lerr error
		if res != nil {
			live, lerr = ex.Check(ctx, res)
		}
		st, err := co.JobStatus(ctx, tok)
		return func() {
			j.busy[laneMain] = false
			if j.gone || d.stopping {
				return
			}
			switch {
			case jobGone(err):
				j.log.WithError(err).Warn("the coordinator no longer knows this job's token; considering it over")
				d.finished(j, "unknown")
				return
			case err != nil:
				j.log.WithError(err).Debug("job status check failed")
			case st.Finished:
				d.finished(j, st.Status)
				return
			case lerr == nil && (live.Liveness == executors.Exited || live.Liveness == executors.Gone):
				d.lost(j, live)
				return
			}
			j.checkEvery = min(2*j.checkEvery, d.cfg.JobProgressPollInterval.Duration())
			j.checkEvery = max(j.checkEvery, d.cfg.CheckInterval.Duration())
			j.setTimer(laneMain, d.after(j.checkEvery, func() { d.finishCheck(j) }))
		}
	})
}

// finished: the coordinator says the job is over; its resource is deleted
// (or kept and released with paas_finished_jobs_keep_resources).
func (d *Dispatcher) finished(j *job, status string) {
	now := d.clock.Now()
	j.rec.Phase = state.PhaseDecommissioning
	j.rec.FinishedAt = now
	j.rec.Payload = nil
	if !j.rec.StartedAt.IsZero() {
		d.obs.JobFinished(j.label(), j.rec.Weight*now.Sub(j.rec.StartedAt).Seconds())
	}
	j.log.WithField("status", status).Info("job finished")
	d.keepOrDecommission(j, d.cfg.PaasFinishedJobsKeepResources)
	d.put(j)
	d.maybeForget(j)
}

// lost: the resource died while the coordinator still says the job runs.
func (d *Dispatcher) lost(j *job, live executors.Status) {
	msg := "The host running this job disappeared before the job finished; paas-runner marks the job failed."
	if live.Liveness == executors.Exited {
		msg = fmt.Sprintf("The host running this job stopped (exit code %d) before the job finished; paas-runner marks the job failed.", live.ExitCode)
	}
	j.log.WithField("exit_code", live.ExitCode).Warn("resource died while the job still runs on the coordinator; failing the job")
	d.failJob(j, msg, coordinator.RunnerSystemFailure, d.cfg.PaasFinishedJobsKeepResources)
}

// launchFailed: the job could not be launched. Its log gets a readable line
// (public text only), the coordinator a failure report, and its resource is
// deleted (or kept and released with paas_decommission_launch_failures =
// false, reference §12 item 24).
func (d *Dispatcher) launchFailed(j *job, err error, msg string, reason coordinator.FailureReason) {
	if msg == "" {
		msg = executors.PublicMessage(err)
	}
	if reason == "" {
		reason = coordinator.ScriptFailure
		var je *executors.JobError
		if errors.As(err, &je) && je.Reason != "" {
			reason = je.Reason
		}
	}
	l := j.log.WithField("failure_reason", reason)
	if err != nil {
		l = l.WithError(err)
		j.lastError = err.Error()
	}
	l.Error("launch failed; reporting the job as failed")
	d.obs.LaunchFailed(j.label(), string(reason))
	d.failJob(j, msg, reason, !d.cfg.PaasDecommissionLaunchFailures)
}

// failJob records a failure report owed to the coordinator and releases or
// deletes the resource.
func (d *Dispatcher) failJob(j *job, msg string, reason coordinator.FailureReason, keep bool) {
	j.setTimer(laneMain, nil)
	j.rec.Phase = state.PhaseDecommissioning
	j.rec.FinishedAt = d.clock.Now()
	j.rec.Payload = nil
	j.payload = nil
	j.rec.PendingFailure = &state.Failure{Reason: string(reason), Message: msg}
	j.lineWritten = false
	j.reportAttempts, j.reportBackoff = 0, 0
	d.keepOrDecommission(j, keep)
	d.put(j)
	d.report(j)
}

// stopLaunch: the job was canceled (or finished) on the coordinator while
// launching; its resource is deleted at once and nothing is reported.
func (d *Dispatcher) stopLaunch(j *job, status string) {
	j.log.WithField("status", status).Info("job is over on the coordinator; launch stopped")
	d.obs.LaunchFailed(j.label(), "canceled")
	j.setTimer(laneMain, nil)
	j.rec.Phase = state.PhaseDecommissioning
	j.rec.FinishedAt = d.clock.Now()
	j.rec.Payload = nil
	j.payload = nil
	d.keepOrDecommission(j, false)
	d.put(j)
	d.maybeForget(j)
}

// keepOrDecommission deletes the job's resource, or keeps it (tracked,
// released from the quota). A job without resource is released now.
func (d *Dispatcher) keepOrDecommission(j *job, keep bool) {
	switch {
	case j.res == nil && len(j.rec.Resource) == 0:
		d.releaseJob(j)
	case keep:
		j.rec.KeepResource = true
		if j.inLedger {
			j.inLedger = false
			if err := d.ledger.ReleaseKept(j.ledgerKey); err != nil {
				j.log.WithError(err).Error("ledger release of kept resource failed")
			}
			d.wake()
		}
		j.log.Info("resource kept on purpose (configuration); released from the quota")
	default:
		d.decommission(j)
	}
}

// decommission deletes the job's resource, retrying with back-off forever;
// the ledger entry is released exactly once, after the deletion succeeded.
func (d *Dispatcher) decommission(j *job) {
	if j.gone || j.busy[laneDecom] || j.decommissioned || j.rec.KeepResource || d.stopping {
		return
	}
	if j.r == nil {
		j.log.Error("cannot delete this job's resource: its runner is not configured any more; record kept")
		return
	}
	if j.res == nil {
		// Only a dump (restore still pending or failed): the main lane
		// retries the restore and comes back here.
		return
	}
	if j.decomSince.IsZero() {
		j.decomSince = d.clock.Now()
	}
	j.busy[laneDecom] = true
	ex, res := j.r.exec, j.res
	d.op(classDecommission, func(ctx context.Context) func() {
		err := ex.Decommission(ctx, res)
		return func() {
			j.busy[laneDecom] = false
			if err != nil {
				if d.stopping {
					return
				}
				j.decomAttempts++
				j.lastError = err.Error()
				d.obs.DecommissionFailed(j.label())
				j.decomBackoff = backoff(j.decomBackoff, d.cfg.CheckInterval.Duration(), d.tuning.MaxBackoff)
				j.log.WithError(err).WithFields(logrus.Fields{"attempt": j.decomAttempts, "retry_in": j.decomBackoff}).Warn("resource deletion failed; retrying")
				j.setTimer(laneDecom, d.after(j.decomBackoff, func() { d.decommission(j) }))
				return
			}
			now := d.clock.Now()
			j.decommissioned = true
			d.recentGone[res.Name()] = now
			d.obs.Decommissioned(j.label(), now.Sub(j.decomSince))
			j.log.WithField("resource_id", res.ID()).Info("resource deleted")
			d.releaseJob(j)
			d.maybeForget(j)
		}
	})
}

// report writes the owed failure line into the job log, then reports the
// failure, retrying transient errors with back-off.
func (d *Dispatcher) report(j *job) {
	f := j.rec.PendingFailure
	if j.gone || f == nil || j.busy[laneReport] || d.stopping {
		return
	}
	if j.r == nil {
		j.log.Error("cannot report this job's failure: its runner is not configured any more")
		return
	}
	j.busy[laneReport] = true
	co, tok, id := j.r.coord, j.token(), j.rec.JobID
	reason, exit := coordinator.FailureReason(f.Reason), d.tuning.FailJobExitCode
	var line []byte
	if !j.lineWritten {
		line = jobLogLine(f.Message)
	}
	// Always append after what the log holds: the inner runner may have
	// written (a launch that failed late, a host that died mid-job), and a
	// write at a smaller offset would truncate its output. The coordinator
	// answers 416 with its size and the client resyncs there.
	offset := int64(appendAtEnd)
	d.op(classCheck, func(ctx context.Context) func() {
		var (
			size int64
			terr error
		)
		if line != nil {
			size, terr = co.AppendTrace(ctx, id, tok, offset, line)
		}
		var ferr error
		if terr == nil || permanent(terr) {
			ferr = co.FailJob(ctx, id, tok, reason, exit)
		}
		return func() { d.reported(j, line != nil, size, terr, ferr) }
	})
}

// reported applies the outcome of a failure report: the line written (or
// given up), the report accepted, given up or retried with back-off.
func (d *Dispatcher) reported(j *job, wrote bool, size int64, terr, ferr error) {
	j.busy[laneReport] = false
	if j.gone || j.rec.PendingFailure == nil {
		return
	}
	err := ferr
	if wrote {
		switch {
		case terr == nil:
			j.lineWritten = true
			j.rec.TraceOffset = size
		case permanent(terr):
			j.lineWritten = true
			j.log.WithError(terr).Warn("could not write the failure line into the job log")
		default:
			err = terr
		}
	}
	reason := j.rec.PendingFailure.Reason
	switch {
	case err == nil:
		j.log.WithField("failure_reason", reason).Info("job failure reported to the coordinator")
		j.rec.PendingFailure = nil
	case permanent(err):
		j.log.WithError(err).Error("failure report rejected permanently; giving up")
		j.rec.PendingFailure = nil
	default:
		d.put(j)
		if d.stopping {
			return
		}
		j.reportAttempts++
		j.reportBackoff = backoff(j.reportBackoff, d.cfg.CheckInterval.Duration(), d.tuning.MaxBackoff)
		j.log.WithError(err).WithFields(logrus.Fields{"attempt": j.reportAttempts, "retry_in": j.reportBackoff}).Warn("failure report failed; retrying")
		j.setTimer(laneReport, d.after(j.reportBackoff, func() { d.report(j) }))
		return
	}
	d.put(j)
	d.maybeForget(j)
}

// releaseJob releases the job's ledger entry (once).
func (d *Dispatcher) releaseJob(j *job) {
	if !j.inLedger {
		return
	}
	j.inLedger = false
	d.releaseKey(j.ledgerKey)
}

func (d *Dispatcher) releaseKey(key string) {
	if err := d.ledger.Release(key); err != nil {
		d.log.WithError(err).WithField("key", key).Error("ledger release failed")
	}
	d.wake()
}

// maybeForget stops tracking a job that is over, owes no report and has no
// resource left to delete. A kept resource stays tracked (KeepResource).
func (d *Dispatcher) maybeForget(j *job) {
	if j.gone || j.rec.Phase != state.PhaseDecommissioning || j.rec.PendingFailure != nil {
		return
	}
	for _, b := range j.busy {
		if b {
			return
		}
	}
	hasRes := j.res != nil || len(j.rec.Resource) > 0
	if hasRes && !j.decommissioned {
		return // deleting, or kept on purpose
	}
	d.releaseJob(j)
	for l := range j.timer {
		j.setTimer(lane(l), nil)
	}
	j.gone = true
	delete(d.jobs, j.key)
	d.store.Delete(j.key)
	j.log.Debug("job no longer tracked")
}
