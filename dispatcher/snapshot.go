package dispatcher

import (
	"cmp"
	"slices"
	"time"

	"gitlab.com/paas-runner/paas-runner/quota"
)

// Snapshot is an immutable view of the dispatcher, safe to read from any
// goroutine. It never contains a token.
type Snapshot struct {
	// Time is when the snapshot was taken.
	Time time.Time
	// Ledger is the quota ledger's totals and limits.
	Ledger quota.Snapshot
	// Jobs lists the tracked jobs, by runner then job id.
	Jobs []JobView
	// Runners lists the runners in polling order (removed ones last).
	Runners []RunnerView
	// Stopping is true once a graceful shutdown began.
	Stopping bool
	// PollCycles counts poll cycles so far.
	PollCycles int64
}

// JobView is one tracked job in a Snapshot.
type JobView struct {
	// Runner is the runner's label; RunnerID its short id.
	Runner, RunnerID string
	JobID            int64
	ProjectID        int64
	// Flavor is the flavor the job asked for ("" = default).
	Flavor         string
	ExpectedWeight float64
	// Weight is the weight counted in the ledger (0 when released).
	Weight float64
	// Phase is the state phase, or "kept" for a resource kept on purpose.
	Phase        string
	ResourceID   string
	ResourceName string
	AcquiredAt   time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	// FailureOwed is the failure_reason still to report, if any.
	FailureOwed string
	// DecommissionAttempts counts failed deletions so far.
	DecommissionAttempts int
	// LastError is the latest internal error (operators only).
	LastError string
}

// RunnerView is one runner in a Snapshot.
type RunnerView struct {
	Name, ID, Executor string
	// Polling: a job request is in flight.
	Polling bool
	// Blocked: the last poll was refused by the quota ledger.
	Blocked   bool
	MaxWeight float64
	// BackoffUntil is when a backed-off runner is polled again.
	BackoffUntil time.Time
	// Forbidden: the coordinator rejected the runner token.
	Forbidden bool
	LastError string
	// Removed: removed by a reload; its jobs are still handled.
	Removed bool
}

// Snapshot returns the latest published view; safe from any goroutine.
func (d *Dispatcher) Snapshot() Snapshot {
	if s := d.snap.Load(); s != nil {
		return *s
	}
	return Snapshot{}
}

// publishEvery is the minimum interval between two snapshot rebuilds under
// load: building one is O(tracked jobs), events are O(1). With many tracked
// jobs the interval grows so that rebuilding stays under ~5 % of the
// owner's time.
const publishEvery = 5 * time.Millisecond

// publish builds and publishes a snapshot (owner only).
func (d *Dispatcher) publish() {
	d.dirty = false
	d.lastPublish = d.clock.Now()
	s := &Snapshot{
		Time:       d.clock.Now(),
		Ledger:     d.ledger.Snapshot(),
		Stopping:   d.stopping,
		PollCycles: d.cycles,
		Jobs:       make([]JobView, 0, len(d.jobs)),
	}
	for _, j := range d.jobs {
		s.Jobs = append(s.Jobs, d.jobView(j))
	}
	defer func() {
		d.publishGap = max(publishEvery, 20*d.clock.Now().Sub(s.Time))
	}()
	slices.SortFunc(s.Jobs, func(a, b JobView) int {
		return cmp.Or(cmp.Compare(a.RunnerID, b.RunnerID), cmp.Compare(a.JobID, b.JobID))
	})
	seen := map[*runner]bool{}
	for _, r := range d.order {
		seen[r] = true
		s.Runners = append(s.Runners, runnerView(r))
	}
	for _, r := range d.runners {
		if !seen[r] {
			s.Runners = append(s.Runners, runnerView(r))
		}
	}
	d.snap.Store(s)
}

func (d *Dispatcher) jobView(j *job) JobView {
	v := JobView{
		Runner: j.label(), RunnerID: j.rec.Runner, JobID: j.rec.JobID, ProjectID: j.rec.ProjectID,
		Flavor: j.rec.Flavor, ExpectedWeight: j.rec.ExpectedWeight, Phase: string(j.rec.Phase),
		ResourceName: j.rec.ResourceName, AcquiredAt: j.rec.AcquiredAt, StartedAt: j.rec.StartedAt,
		FinishedAt: j.rec.FinishedAt, DecommissionAttempts: j.decomAttempts, LastError: j.lastError,
	}
	if j.rec.KeepResource {
		v.Phase = "kept"
	}
	if j.res != nil {
		v.ResourceID = j.res.ID()
	}
	if j.inLedger {
		v.Weight, _ = d.ledger.Weight(j.ledgerKey)
	}
	if j.rec.PendingFailure != nil {
		v.FailureOwed = j.rec.PendingFailure.Reason
	}
	return v
}

func runnerView(r *runner) RunnerView {
	return RunnerView{
		Name: r.label, ID: r.id, Executor: r.cfg.Executor, Polling: r.polling, Blocked: r.blocked,
		MaxWeight: r.maxWeight, BackoffUntil: r.backoffUntil, Forbidden: r.forbidden,
		LastError: r.lastError, Removed: r.removed,
	}
}
