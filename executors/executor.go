package executors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// Resource is one provisioned host (a Clever app, a container, a process).
// Implementations are immutable values owned by their executor; the
// dispatcher only reads them and hands them back.
type Resource interface {
	// ID is the executor's identifier of the resource (app id, container
	// id, pid@dir). Stable for the resource's lifetime.
	ID() string
	// Name is the deterministic name the resource was created under
	// (JobSpec.ResourceName).
	Name() string
	// Weight is the actual weight of the resource.
	Weight() float64
	// Launched reports whether the job was handed to the resource.
	Launched() bool
}

// JobSpec is what an executor needs to provision and launch one job.
type JobSpec struct {
	// Job is the acquired payload.
	Job *coordinator.Job
	// ResourceName is the deterministic name of the resource to create
	// (see ResourceName); it is persisted before Provision is called.
	ResourceName string
}

// Liveness is what an executor can tell of a launched resource.
type Liveness int

// Liveness values.
const (
	// LivenessUnknown: the executor cannot tell.
	LivenessUnknown Liveness = iota
	// Alive: the resource is still running the job.
	Alive
	// Exited: the resource ended (normally or not).
	Exited
	// Gone: the resource no longer exists.
	Gone
)

// Status is the result of Executor.Check.
type Status struct {
	Liveness Liveness
	// ExitCode is set when Liveness is Exited.
	ExitCode int
}

// Listed is one resource found by Executor.List.
type Listed struct {
	ID   string
	Name string
}

// Executor provisions hosts for jobs of one [[runners]] section.
//
// Contract:
//   - Every method is safe for concurrent use and honours ctx; none keeps a
//     goroutine running after it returns except what Launch documents.
//   - Provision is NOT idempotent by itself: before calling it the caller
//     persists spec.ResourceName; after a crash, Adopt finds a resource
//     created under that name. Provision returns the resource AND an error
//     when something remote was created before the failure, so that the
//     caller can delete it.
//   - Decommission is idempotent: a resource already gone is a success.
//   - Errors meant for the job log are *JobError (see Public); others are
//     internal and never shown to users.
type Executor interface {
	// Kind returns the executor name (config.ExecutorCleverDocker, …).
	Kind() string
	// Flavors returns the flavor table jobs may choose from.
	Flavors(ctx context.Context) (quota.Flavors, error)
	// ExpectedWeight returns the weight of the flavor the job asks for.
	// An invalid or over-max flavor is a *JobError listing the allowed ones.
	ExpectedWeight(ctx context.Context, job *coordinator.Job) (float64, error)
	// MaxWeight is the largest weight a job of this runner may have
	// (min_requestable_weight): the runner is polled only when the headroom
	// can take it.
	MaxWeight(ctx context.Context) (float64, error)
	// Provision creates the resource for the job (may return both a
	// resource and an error, see above).
	Provision(ctx context.Context, spec JobSpec) (Resource, error)
	// Launch hands the job to the resource (Clever: git push; Docker:
	// build + start; process: start). It returns once the job is handed
	// over, not when it ends. Launching an already launched resource is a
	// no-op returning the same resource.
	Launch(ctx context.Context, res Resource, spec JobSpec) (Resource, error)
	// Check reports whether a launched resource still runs its job.
	Check(ctx context.Context, res Resource) (Status, error)
	// Decommission deletes the resource; already gone = success.
	Decommission(ctx context.Context, res Resource) error
	// Dump serialises a resource for the state file. It never contains
	// executor credentials (Clever tokens); job tokens are allowed.
	Dump(res Resource) (json.RawMessage, error)
	// Restore rebuilds a resource from Dump output, re-resolving credentials
	// from the current configuration.
	Restore(ctx context.Context, dump json.RawMessage) (Resource, error)
	// Adopt looks for a resource created under name (after a crash between
	// Provision and the state write); it returns (nil, nil) when none.
	Adopt(ctx context.Context, name string, job *coordinator.Job) (Resource, error)
	// List returns every resource this runner owns (names starting with
	// the runner's resource prefix), for reconciliation.
	List(ctx context.Context) ([]Listed, error)
}

// ResourceName returns the deterministic resource name of a job:
// <prefix><runner short id>-<job id>, e.g. hpd-job-3fa9c2d17b04-4821.
func ResourceName(r *config.Runner, jobID int64) string {
	return fmt.Sprintf("%s%d", ResourcePrefix(r), jobID)
}

// ResourcePrefix returns the prefix shared by every resource of runner r
// (<prefix><short id>-), used by List implementations.
func ResourcePrefix(r *config.Runner) string {
	return r.ResourceNamePrefix + r.ShortID() + "-"
}

// JobError is an error whose Public text may be written into the job log,
// and which says which failure_reason to report. Cause is internal.
type JobError struct {
	Public string
	Reason coordinator.FailureReason
	Cause  error
}

// Error implements error.
func (e *JobError) Error() string {
	if e.Cause == nil {
		return e.Public
	}
	cause := e.Cause.Error()
	if cause == e.Public || strings.HasPrefix(e.Public, cause) {
		return e.Public
	}
	if strings.HasPrefix(cause, e.Public) {
		return cause
	}
	return e.Public + ": " + cause
}

// Unwrap returns the cause.
func (e *JobError) Unwrap() error { return e.Cause }

// PublicMessage returns the text of err that may be shown in a job log: the
// Public text of a *JobError in its chain, or a generic message.
func PublicMessage(err error) string {
	if je, ok := errors.AsType[*JobError](err); ok {
		return je.Public
	}
	return "paas-runner could not provision a host for this job; see the runner's logs"
}

// Deps are the shared dependencies a Factory receives.
type Deps struct {
	Logger logrus.FieldLogger
	// Coordinator is the client of the runner's coordinator (multi-tenant
	// group lookups).
	Coordinator *coordinator.Client
	// RequestObserver, when set, is told of every request the executor
	// makes to its platform's API (metrics); same signature as
	// coordinator.Observer.
	RequestObserver coordinator.Observer
}

// Factory builds the Executor of one runner section.
type Factory func(r *config.Runner, deps Deps) (Executor, error)

var factories = map[string]Factory{}

// Register makes an executor kind available to New. Executor packages call
// it from init; cmd/paas-runner imports them.
func Register(kind string, f Factory) { factories[kind] = f }

// New builds the executor named by r.Executor.
func New(r *config.Runner, deps Deps) (Executor, error) {
	f, ok := factories[r.Executor]
	if !ok {
		return nil, fmt.Errorf("runner %q: unknown executor %q", r.Label(), r.Executor)
	}
	return f(r, deps)
}
