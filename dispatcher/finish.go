package dispatcher

import (
	"context"
	"fmt"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

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
