package metrics

import (
	"regexp"
	"slices"
	"time"

	"gitlab.com/paas-runner/paas-runner/dispatcher"
)

// JobsPath is the local API path listing the tracked jobs; one job is at
// JobsPath + "/" + runner + "/" + id.
const JobsPath = "/api/v1/jobs"

// Job is one tracked job as the local API serves it (JSON). It holds no
// secret: it is built from a dispatcher.JobView, which holds none.
type Job struct {
	// Runner is the runner's label; RunnerID its short id.
	Runner   string `json:"runner"`
	RunnerID string `json:"runner_id"`
	JobID    int64  `json:"job_id"`
	// ProjectID is the job's project.
	ProjectID int64 `json:"project_id"`
	// Flavor is the flavor the job asked for ("" = the default one).
	Flavor string `json:"flavor"`
	// ExpectedWeight is the weight of the flavor; Weight the weight still
	// counted in the quota (0 once released).
	ExpectedWeight float64 `json:"expected_weight"`
	Weight         float64 `json:"weight"`
	// Phase is the state phase, or "kept".
	Phase        string `json:"phase"`
	ResourceID   string `json:"resource_id,omitempty"`
	ResourceName string `json:"resource_name,omitempty"`
	// AcquiredAt, StartedAt and FinishedAt are nil until they happen.
	AcquiredAt *time.Time `json:"acquired_at,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// FailureOwed is the failure_reason still to report, if any.
	FailureOwed string `json:"failure_owed,omitempty"`
	// DecommissionAttempts counts failed deletions so far.
	DecommissionAttempts int `json:"decommission_attempts,omitempty"`
	// LastError is the latest internal error.
	LastError string `json:"last_error,omitempty"`
}

// JobList is the answer of GET /api/v1/jobs.
type JobList struct {
	// Time is when the dispatcher's snapshot was taken.
	Time time.Time `json:"time"`
	// Stopping is true once a graceful shutdown began.
	Stopping bool `json:"stopping"`
	// Jobs are sorted by runner id then job id.
	Jobs []Job `json:"jobs"`
}

// jobFromView converts a snapshot's job view to its API form.
func jobFromView(v dispatcher.JobView) Job {
	ts := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	return Job{
		Runner: v.Runner, RunnerID: v.RunnerID, JobID: v.JobID, ProjectID: v.ProjectID,
		Flavor: v.Flavor, ExpectedWeight: v.ExpectedWeight, Weight: v.Weight, Phase: v.Phase,
		ResourceID: v.ResourceID, ResourceName: v.ResourceName,
		AcquiredAt: ts(v.AcquiredAt), StartedAt: ts(v.StartedAt), FinishedAt: ts(v.FinishedAt),
		FailureOwed: v.FailureOwed, DecommissionAttempts: v.DecommissionAttempts, LastError: redactText(v.LastError),
	}
}

// jobListFromSnapshot converts a snapshot to the API's job list.
func jobListFromSnapshot(s dispatcher.Snapshot) JobList {
	l := JobList{Time: s.Time.UTC(), Stopping: s.Stopping, Jobs: make([]Job, 0, len(s.Jobs))}
	for _, v := range s.Jobs {
		l.Jobs = append(l.Jobs, jobFromView(v))
	}
	return l
}

// userinfoRE matches the credentials of a URL (scheme://user:pass@).
var userinfoRE = regexp.MustCompile(`(://)[^/@\s"']+@`)

// redactText masks URL credentials (scheme://user:token@host) in an
// internal error text before it is served or dumped: errors are built
// without tokens, this is a second line of defence.
func redactText(s string) string {
	return userinfoRE.ReplaceAllString(s, "${1}[MASKED]@")
}

// RedactSnapshot returns a copy of s whose error texts went through
// redactText (s itself is shared and immutable).
func RedactSnapshot(s dispatcher.Snapshot) dispatcher.Snapshot {
	s.Jobs = slices.Clone(s.Jobs)
	for i := range s.Jobs {
		s.Jobs[i].LastError = redactText(s.Jobs[i].LastError)
	}
	s.Runners = slices.Clone(s.Runners)
	for i := range s.Runners {
		s.Runners[i].LastError = redactText(s.Runners[i].LastError)
	}
	return s
}
