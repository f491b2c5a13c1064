package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

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
