package state

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Version is the current state file format version.
const Version = 1

// Sentinel errors returned when a state file cannot be used.
var (
	// ErrCorrupt marks a state file that is not valid JSON of a known
	// layout (truncated, garbage, empty). The file is left untouched.
	ErrCorrupt = errors.New("corrupt state file")
	// ErrUnsupportedVersion marks a state file written by a newer
	// paas-runner (its "version" is greater than Version).
	ErrUnsupportedVersion = errors.New("unsupported state file version")
	// ErrClosed is returned by Sync when the store is closed with changes
	// that were never written.
	ErrClosed = errors.New("state store closed")
)

// Phase is where a tracked job stands.
type Phase string

// Phases of a tracked job, in order.
const (
	// PhasePending: acquired and admitted, nothing created yet. The record
	// carries the resource name that Provision will use (intent).
	PhasePending Phase = "pending"
	// PhaseProvisioned: the resource exists, the job is not handed over.
	PhaseProvisioned Phase = "provisioned"
	// PhaseLaunched: handed over, real start not yet observed.
	PhaseLaunched Phase = "launched"
	// PhaseRunning: really started (trace grew, or no trace watch).
	PhaseRunning Phase = "running"
	// PhaseDecommissioning: the job is over (or failed to launch); the
	// resource must be deleted. Failure reports still owed are recorded in
	// PendingFailure.
	PhaseDecommissioning Phase = "decommissioning"
)

// Key identifies a tracked job.
type Key struct {
	// Runner is the runner's short id (config.Runner.ShortID).
	Runner string `json:"runner"`
	JobID  int64  `json:"job_id"`
}

// Job is one tracked job as persisted. It is a plain data struct, separate
// from config and API types; Token is the job token in clear (the file is
// 0600).
//
// The state file writer encodes Job by hand (appendJob in encode.go, the
// bytes json.Marshal gives): a field added here must be added there too,
// which TestAppendJobCoversEveryField enforces.
type Job struct {
	Runner         string          `json:"runner"`
	JobID          int64           `json:"job_id"`
	Token          string          `json:"token"`
	ProjectID      int64           `json:"project_id,omitempty"`
	Flavor         string          `json:"flavor,omitempty"`
	ExpectedWeight float64         `json:"expected_weight"`
	Weight         float64         `json:"weight,omitempty"`
	TraceOffset    int64           `json:"trace_offset"`
	Phase          Phase           `json:"phase"`
	ResourceName   string          `json:"resource_name"`
	Resource       json.RawMessage `json:"resource,omitempty"`
	// Payload is the full job payload, kept until the job is launched so a
	// restart can launch it again.
	Payload json.RawMessage `json:"payload,omitempty"`
	// PendingFailure, when set, is a failure report still owed to the
	// coordinator ({reason, message}).
	PendingFailure *Failure  `json:"pending_failure,omitempty"`
	AcquiredAt     time.Time `json:"acquired_at"`
	StartedAt      time.Time `json:"started_at,omitzero"`
	FinishedAt     time.Time `json:"finished_at,omitzero"`
	// KeepResource marks a resource kept on purpose
	// (paas_finished_jobs_keep_resources, paas_decommission_launch_failures
	// = false): tracked, not deleted, not counted in the quota.
	KeepResource bool `json:"keep_resource,omitempty"`
	// AcceptPending marks a job acquired with two-phase job commit whose
	// accept (PUT state=running) is not known to have reached the
	// coordinator: the record was made durable first, so a restart accepts
	// it (or drops it if the coordinator gave it back to the queue). Records
	// without the field (older files, jobs accepted) count as accepted.
	AcceptPending bool `json:"accept_pending,omitempty"`
}

// Key returns the job's key.
func (j *Job) Key() Key { return Key{Runner: j.Runner, JobID: j.JobID} }

// HasResource reports whether a resource dump is recorded for the job.
func (j *Job) HasResource() bool {
	return len(j.Resource) > 0 && string(j.Resource) != "null"
}

// clone returns a deep copy of j, so that neither the caller nor the store
// can mutate the other's byte slices.
func (j Job) clone() Job {
	j.Resource = slices.Clone(j.Resource)
	j.Payload = slices.Clone(j.Payload)
	if j.PendingFailure != nil {
		f := *j.PendingFailure
		j.PendingFailure = &f
	}
	return j
}

// Failure is a failure report owed to the coordinator.
type Failure struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// File is the whole state file.
type File struct {
	Version int       `json:"version"`
	SavedAt time.Time `json:"saved_at"`
	Jobs    []Job     `json:"jobs"`
}

// sortJobs orders jobs by runner, then job id: the order of Load and of the
// file.
func sortJobs(jobs []Job) {
	slices.SortFunc(jobs, func(a, b Job) int {
		return cmp.Or(cmp.Compare(a.Runner, b.Runner), cmp.Compare(a.JobID, b.JobID))
	})
}

// Store persists tracked jobs. Put and Delete are cheap in-memory updates;
// a background writer coalesces them (at most one write in flight, latest
// state wins). Sync blocks until every change made before it is durable.
// Implementations are safe for concurrent use.
//
// Load returns the jobs the store currently holds: right after opening,
// what was persisted; later, that plus every Put and minus every Delete.
// Jobs are sorted by runner then job id and are copies the caller may
// modify. Put replaces the job with the same Key. Deleting an unknown key is
// a no-op. Sync returns the error of a failed write that should have
// contained its changes (the writer keeps retrying in the background), or
// ctx's error. Close is idempotent; Put and Delete after Close are ignored.
type Store interface {
	// Load returns what was persisted (an empty File when nothing was).
	Load() (*File, error)
	Put(j Job)
	Delete(k Key)
	// Sync waits until all earlier Put/Delete calls are on disk.
	Sync(ctx context.Context) error
	// Close flushes and stops the writer.
	Close(ctx context.Context) error
}
