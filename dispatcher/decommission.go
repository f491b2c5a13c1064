package dispatcher

import (
	"context"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/state"
)

// endLaunch ends the job's main lane: it is over (nothing left to launch,
// its payload dropped) and its resource is deleted, or kept when keep.
func (d *Dispatcher) endLaunch(j *job, keep bool) {
	j.setTimer(laneMain, nil)
	j.rec.Phase = state.PhaseDecommissioning
	j.rec.FinishedAt = d.clock.Now()
	j.rec.Payload = nil
	j.payload = nil
	d.keepOrDecommission(j, keep)
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
