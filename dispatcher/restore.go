package dispatcher

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

// restore re-tracks every persisted job (owner only, before the loop):
// weights are force-reserved, then each job resumes where it stopped.
func (d *Dispatcher) restore(f *state.File) {
	if f == nil {
		return
	}
	n := 0
	for _, rec := range f.Jobs {
		if d.restoreJob(rec) {
			n++
		}
	}
	if n > 0 {
		d.log.WithField("jobs", n).Info("restored tracked jobs from state")
	}
}

// restoreJob re-tracks one persisted job; false when it is a duplicate.
func (d *Dispatcher) restoreJob(rec state.Job) bool {
	key := rec.Key()
	if _, dup := d.jobs[key]; dup {
		d.log.WithFields(logrus.Fields{"runner": rec.Runner, "job_id": rec.JobID}).Warn("state holds a job twice; keeping the first record")
		return false
	}
	j := d.newJob(rec, d.runners[rec.Runner])
	d.jobs[key] = j
	if j.r == nil {
		j.log.Error("restored job belongs to a runner that is not configured: record kept, resource NOT watched nor deleted (re-add the runner, or `paas-runner state forget`)")
		return true
	}
	if len(rec.Payload) > 0 {
		p, err := coordinator.ParseJob(rec.Payload)
		if err != nil {
			j.log.WithError(err).Error("restored job payload unreadable")
		} else {
			j.payload = p
		}
	}
	d.reserveRestored(j)
	d.resume(j)
	return true
}

// reserveRestored puts a restored job back into the ledger: its weight
// (actual, else expected) without limit checks, out of the provisioning
// count once it runs; kept resources are only counted as kept.
func (d *Dispatcher) reserveRestored(j *job) {
	rec := j.rec
	if rec.KeepResource {
		if err := d.ledger.MarkKept(j.ledgerKey); err != nil {
			j.log.WithError(err).Error("ledger restore of kept resource failed")
		}
		return
	}
	if len(rec.Resource) == 0 && rec.Phase == state.PhaseDecommissioning {
		return // only a failure report is owed
	}
	w := rec.Weight
	if w <= 0 {
		w = rec.ExpectedWeight
	}
	if err := d.ledger.ForceReserve(j.ledgerKey, w); err != nil {
		j.log.WithError(err).Error("ledger restore failed")
		return
	}
	j.inLedger = true
	if rec.Phase == state.PhaseRunning || rec.Phase == state.PhaseDecommissioning {
		_ = d.ledger.Started(j.ledgerKey)
	}
}

// resume rebuilds the job's resource from its dump if any, then continues.
func (d *Dispatcher) resume(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	if len(j.rec.Resource) == 0 || j.res != nil {
		d.continueRestored(j)
		return
	}
	j.busy[laneMain] = true
	ex, dump := j.r.exec, j.rec.Resource
	d.op(classCheck, func(ctx context.Context) func() {
		res, err := ex.Restore(ctx, dump)
		return func() {
			j.busy[laneMain] = false
			if err == nil && res == nil {
				err = errors.New("executor restored no resource")
			}
			if err != nil {
				d.retryMain(j, err, d.resume)
				return
			}
			j.res = res
			j.resSince = d.clock.Now()
			j.mainBackoff = 0
			d.continueRestored(j)
		}
	})
}

// continueRestored continues a restored job from its persisted phase.
func (d *Dispatcher) continueRestored(j *job) {
	if j.rec.AcceptPending && j.rec.Phase == state.PhasePending && j.res == nil {
		// Recorded, then stopped before the accept was known to land.
		d.accept(j, d.continueRestored)
		return
	}
	switch j.rec.Phase {
	case state.PhasePending, state.PhaseProvisioned:
		if j.payload == nil {
			d.launchFailed(j, errors.New("payload missing from state"), "paas-runner lost this job's payload while restarting; please retry the job", coordinator.RunnerSystemFailure)
			return
		}
		if j.rec.ExpectedWeight == 0 && j.res == nil {
			// Recorded right after acquisition, before it was weighed.
			d.weigh(j)
			return
		}
		if j.res != nil {
			d.checkThen(j, d.launch)
			return
		}
		d.checkThen(j, d.adopt)
	case state.PhaseLaunched:
		if j.res == nil {
			d.launchFailed(j, errors.New("launched job without resource in state"), "paas-runner lost track of this job's host while restarting; please retry the job", coordinator.RunnerSystemFailure)
			return
		}
		if j.r.watch() {
			d.startWatch(j)
			return
		}
		d.markStarted(j)
	case state.PhaseRunning:
		j.checkEvery = d.cfg.CheckInterval.Duration()
		d.finishCheck(j)
	case state.PhaseDecommissioning:
		d.report(j)
		if !j.rec.KeepResource {
			d.decommission(j)
		}
		d.maybeForget(j)
	default:
		j.log.WithField("phase", j.rec.Phase).Error("restored job has an unknown phase; record kept")
	}
}

// weigh computes the expected weight of a restored job recorded before it
// was weighed; an invalid flavor fails the job as at acquisition.
func (d *Dispatcher) weigh(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	j.busy[laneMain] = true
	ex, p := j.r.exec, j.payload
	d.op(classCheck, func(ctx context.Context) func() {
		w, err := ex.ExpectedWeight(ctx, p)
		return func() {
			j.busy[laneMain] = false
			var je *executors.JobError
			switch {
			case errors.As(err, &je):
				d.launchFailed(j, err, "", "")
			case err != nil:
				d.retryMain(j, err, d.weigh)
			default:
				j.rec.ExpectedWeight = w
				if j.inLedger {
					if err := d.ledger.Adjust(j.ledgerKey, w); err != nil {
						j.log.WithError(err).Error("ledger adjust failed")
					}
				}
				d.put(j)
				d.continueRestored(j)
			}
		}
	})
}

// adopt looks for a resource created under the job's name before a crash
// (intent persisted, result not); provisions only if there is none.
func (d *Dispatcher) adopt(j *job) {
	if j.gone || j.busy[laneMain] || d.stopping {
		return
	}
	j.busy[laneMain] = true
	ex, name, p := j.r.exec, j.rec.ResourceName, j.payload
	d.op(classLaunch, func(ctx context.Context) func() {
		res, err := ex.Adopt(ctx, name, p)
		return func() {
			j.busy[laneMain] = false
			if err != nil {
				d.retryMain(j, err, d.adopt)
				return
			}
			if res == nil {
				d.provision(j)
				return
			}
			j.log.WithField("resource_id", res.ID()).Info("adopted the resource created before the restart")
			d.setResource(j, res, state.PhaseProvisioned)
			d.launch(j)
		}
	})
}

// reconcile lists every runner's resources and compares them with the
// tracked jobs: orphans are deleted (unless
// paas_finished_jobs_keep_resources), vanished resources fail their job.
func (d *Dispatcher) reconcile() {
	if d.stopping {
		return
	}
	for _, r := range d.runners {
		d.reconcileRunner(r)
	}
	if iv := d.cfg.ReconcileInterval.Duration(); iv > 0 {
		d.after(iv, d.reconcile)
	}
}

func (d *Dispatcher) reconcileRunner(r *runner) {
	if _, busy := d.reconciling[r.id]; busy {
		return
	}
	start := d.clock.Now()
	d.reconciling[r.id] = start
	ex := r.exec
	d.op(classCheck, func(ctx context.Context) func() {
		listed, err := ex.List(ctx)
		return func() {
			delete(d.reconciling, r.id)
			if err != nil {
				if !d.stopping {
					r.log.WithError(err).Warn("reconciliation: listing resources failed")
				}
				return
			}
			d.reconciled(r, start, listed)
		}
	})
}

func (d *Dispatcher) reconciled(r *runner, start time.Time, listed []executors.Listed) {
	// Every tracked job counts (a resource may be tracked under another
	// runner's record, e.g. an imported Heptapod job).
	tracked := make([]state.Job, 0, len(d.jobs))
	for _, j := range d.jobs {
		tracked = append(tracked, j.rec)
	}
	ls := make([]state.Listed, 0, len(listed))
	for _, l := range listed {
		ls = append(ls, state.Listed{ID: l.ID, Name: l.Name})
	}
	plan := state.Plan(tracked, map[string][]state.Listed{r.id: ls}, d.cfg.PaasFinishedJobsKeepResources)
	for _, o := range plan.KeptOrphans {
		if t, ok := d.recentGone[o.Name]; ok && !t.Before(start) {
			continue
		}
		d.obs.OrphanFound(r.label)
		r.log.WithFields(logrus.Fields{"resource_id": o.ID, "resource_name": o.Name}).
			Warn("reconciliation: resource tracked by no job (kept: paas_finished_jobs_keep_resources)")
	}
	for _, o := range plan.Orphans {
		if t, ok := d.recentGone[o.Name]; ok && !t.Before(start) {
			continue // deleted by us while listing
		}
		d.obs.OrphanFound(r.label)
		r.log.WithFields(logrus.Fields{"resource_id": o.ID, "resource_name": o.Name}).
			Warn("reconciliation: deleting a resource tracked by no job")
		d.deleteOrphan(r, o.Name)
	}
	for _, k := range plan.Vanished {
		// Confirm with the executor: a running job's next finish check
		// (now) fails it if the resource is gone while the coordinator
		// still says running. Other phases detect it in their own flow.
		j := d.jobs[k]
		if j == nil || j.busy[laneMain] || j.res == nil || !j.resSince.Before(start) || j.rec.Phase != state.PhaseRunning {
			continue
		}
		j.log.Warn("reconciliation: the job's resource is no longer listed; checking it now")
		j.setTimer(laneMain, nil)
		d.finishCheck(j)
	}
	for name, t := range d.recentGone {
		if t.Before(start) {
			delete(d.recentGone, name)
		}
	}
}

// deleteOrphan adopts an untracked resource by name and deletes it.
func (d *Dispatcher) deleteOrphan(r *runner, name string) {
	ex := r.exec
	var hint *coordinator.Job
	if _, id, ok := state.ParseResourceName(executors.ResourcePrefix(&r.cfg), name); ok {
		hint = &coordinator.Job{ID: id}
	} else if i := strings.LastIndexByte(name, '-'); i >= 0 {
		if id, err := strconv.ParseInt(name[i+1:], 10, 64); err == nil {
			hint = &coordinator.Job{ID: id}
		}
	}
	d.op(classDecommission, func(ctx context.Context) func() {
		res, err := ex.Adopt(ctx, name, hint)
		if err == nil && res != nil {
			err = ex.Decommission(ctx, res)
		}
		return func() {
			if err != nil {
				r.log.WithError(err).WithField("resource_name", name).Warn("reconciliation: orphan deletion failed; retried at next reconciliation")
				return
			}
			d.recentGone[name] = d.clock.Now()
			d.obs.OrphanDeleted(r.label)
		}
	})
}
