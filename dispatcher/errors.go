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
