package dispatcher

import (
	"context"
	"errors"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// statusOf returns the HTTP status of a coordinator error, or 0.
func statusOf(err error) int { return coordinator.StatusCode(err) }

// permanent reports whether retrying a coordinator call that failed with
// err is pointless (coordinator.Retryable says no). Context errors are
// never permanent here: they come from shutdown or our own timeouts, and
// the call is retried later (or after restart).
func permanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return !coordinator.Retryable(err)
}

// jobGone reports whether a job status check failed because the job no
// longer exists for its token (403, 404, 410): it is over for us. (401 is
// already "finished" in coordinator.JobStatus.)
func jobGone(err error) bool {
	switch statusOf(err) {
	case 403, 404, 410:
		return true
	}
	return false
}
