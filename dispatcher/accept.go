package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

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
	d.endLaunch(j, false)
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
