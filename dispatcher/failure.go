package dispatcher

import (
	"context"
	"errors"
	"math"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

// appendAtEnd is the trace offset used to append after whatever the job log
// holds: the coordinator answers 416 with the stored size and the client
// resyncs to it.
const appendAtEnd = math.MaxInt32

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
	j.rec.PendingFailure = &state.Failure{Reason: string(reason), Message: msg}
	j.lineWritten = false
	j.reportAttempts, j.reportBackoff = 0, 0
	d.endLaunch(j, keep)
	d.put(j)
	d.report(j)
}

// stopLaunch: the job was canceled (or finished) on the coordinator while
// launching; its resource is deleted at once and nothing is reported.
func (d *Dispatcher) stopLaunch(j *job, status string) {
	j.log.WithField("status", status).Info("job is over on the coordinator; launch stopped")
	d.obs.LaunchFailed(j.label(), "canceled")
	d.dropUnaccepted(j)
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
