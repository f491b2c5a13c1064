package dispatcher

import "time"

// Observer receives the dispatcher's notable events, for metrics. Every
// method is called from the dispatcher's owner goroutine and must return
// quickly without blocking. runner is the runner's label
// (config.Runner.Label), a bounded value; no job id or token is ever passed.
type Observer interface {
	// JobAcquired: a job was acquired and admitted; flavor is the flavor it
	// asked for ("default" when none).
	JobAcquired(runner, flavor string)
	// LaunchSucceeded: the job was handed to its resource; d is the time
	// from acquisition to real start.
	LaunchSucceeded(runner string, d time.Duration)
	// LaunchFailed: the job could not be launched; reason is the GitLab
	// failure_reason reported (or "canceled").
	LaunchFailed(runner, reason string)
	// JobStarted: the job really started (trace grew, or launch returned
	// without trace watch), sinceAcquired after acquisition.
	JobStarted(runner string, sinceAcquired time.Duration)
	// JobFinished: the coordinator says the job is over; weightSeconds is
	// its weight multiplied by its running time.
	JobFinished(runner string, weightSeconds float64)
	// Decommissioned: a resource was deleted, d after deletion was decided.
	Decommissioned(runner string, d time.Duration)
	// DecommissionFailed: one deletion attempt failed (it is retried).
	DecommissionFailed(runner string)
	// OrphanFound: reconciliation found a resource no job tracks.
	OrphanFound(runner string)
	// OrphanDeleted: an orphan was deleted.
	OrphanDeleted(runner string)
}

// NopObserver is an Observer that does nothing; embed it to implement only
// some methods.
type NopObserver struct{}

// JobAcquired implements Observer.
func (NopObserver) JobAcquired(string, string) {}

// LaunchSucceeded implements Observer.
func (NopObserver) LaunchSucceeded(string, time.Duration) {}

// LaunchFailed implements Observer.
func (NopObserver) LaunchFailed(string, string) {}

// JobStarted implements Observer.
func (NopObserver) JobStarted(string, time.Duration) {}

// JobFinished implements Observer.
func (NopObserver) JobFinished(string, float64) {}

// Decommissioned implements Observer.
func (NopObserver) Decommissioned(string, time.Duration) {}

// DecommissionFailed implements Observer.
func (NopObserver) DecommissionFailed(string) {}

// OrphanFound implements Observer.
func (NopObserver) OrphanFound(string) {}

// OrphanDeleted implements Observer.
func (NopObserver) OrphanDeleted(string) {}
