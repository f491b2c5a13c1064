package executortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// Op names a Fake operation that failure and latency knobs apply to.
type Op string

// Operations with knobs.
const (
	// OpProvisionBefore fails Provision before anything is created.
	OpProvisionBefore Op = "provision-before"
	// OpProvisionAfter fails Provision after the remote resource was
	// created: Provision returns the resource AND the error.
	OpProvisionAfter Op = "provision-after"
	// OpProvision is the latency knob of Provision (failures use the two
	// ops above).
	OpProvision Op = "provision"
	// OpLaunch fails or delays Launch.
	OpLaunch Op = "launch"
	// OpDecommission fails or delays Decommission (the resource stays).
	OpDecommission Op = "decommission"
	// OpCheck fails or delays Check.
	OpCheck Op = "check"
)

// ErrInjected is wrapped by every failure a knob injects.
var ErrInjected = errors.New("injected fake executor failure")

// ErrNameTaken is returned by Provision when a resource of that name
// already exists (call Adopt instead).
var ErrNameTaken = errors.New("resource name already exists")

// Failure is the failure knob of one operation. Script is consumed first,
// one entry per call (true = fail); once empty, each call fails with
// probability Rate.
type Failure struct {
	// Rate is the probability in [0, 1] that a call fails.
	Rate float64
	// Script lists the outcomes of the next calls (true = fail).
	Script []bool
}

// Options configure a Fake. The zero value gives the runner's static
// flavors (config.Runner.StaticFlavors: local_flavors, or one flavor "M"
// weighing 1), no failures and no latency.
type Options struct {
	// Flavors replaces the runner's static flavor table.
	Flavors quota.Flavors
	// DefaultFlavor is the flavor of jobs that ask for none (default: the
	// runner's local_default_flavor, else "M").
	DefaultFlavor string
	// MaxFlavor, when set, is the heaviest flavor accepted.
	MaxFlavor string
	// Failures are the initial failure knobs (see SetFailure).
	Failures map[Op]Failure
	// Delays are the initial latencies (see SetDelay).
	Delays map[Op]time.Duration
	// Seed seeds the failure dice (deterministic runs).
	Seed uint64
	// OnLaunch, when set, is called synchronously by the first successful
	// Launch of a resource, after it is marked launched: it simulates the
	// inner runner (e.g. plays the job on gitlabfake). It must not block
	// for long: start a goroutine for a long job.
	OnLaunch func(spec executors.JobSpec)
	// Logger receives debug lines; default discards.
	Logger logrus.FieldLogger
}

// Fake is an in-memory executors.Executor for tests. Its resources live in
// a shared *Cloud, so a Fake built again on the same Cloud (a restarted
// daemon) sees them. It is safe for concurrent use.
type Fake struct {
	cloud    *Cloud
	prefix   string
	flavors  quota.Flavors
	def      string
	max      string
	onLaunch func(spec executors.JobSpec)
	log      logrus.FieldLogger

	mu       sync.Mutex // guards the fields below
	failures map[Op]*Failure
	delays   map[Op]time.Duration
	rng      *rand.Rand
	calls    map[Op]int
}

var _ executors.Executor = (*Fake)(nil)

// NewFake returns a Fake for runner r whose resources live in cloud.
func NewFake(cloud *Cloud, r *config.Runner, opts Options) *Fake {
	f := &Fake{
		cloud:    cloud,
		prefix:   executors.ResourcePrefix(r),
		flavors:  opts.Flavors,
		def:      opts.DefaultFlavor,
		max:      opts.MaxFlavor,
		onLaunch: opts.OnLaunch,
		log:      opts.Logger,
		failures: make(map[Op]*Failure),
		delays:   make(map[Op]time.Duration),
		rng:      rand.New(rand.NewPCG(opts.Seed, 0xfa4e)),
		calls:    make(map[Op]int),
	}
	staticFlavors, staticDef := executors.StaticFlavors(r)
	if f.flavors == nil {
		f.flavors = staticFlavors
	}
	if f.def == "" {
		f.def = staticDef
	}
	if f.log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		f.log = l
	}
	f.log = f.log.WithField("executor", config.ExecutorFake)
	for op, fl := range opts.Failures {
		f.SetFailure(op, fl)
	}
	maps.Copy(f.delays, opts.Delays)
	return f
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// SetFailure replaces the failure knob of op.
func (f *Fake) SetFailure(op Op, fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.Script = append([]bool(nil), fl.Script...)
	f.failures[op] = &fl
}

// SetDelay sets the latency of op (OpProvision, OpLaunch, OpDecommission,
// OpCheck). Delays honour the call's ctx.
func (f *Fake) SetDelay(op Op, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delays[op] = d
}

// Calls returns how many times op was called (OpProvision, OpLaunch,
// OpDecommission, OpCheck).
func (f *Fake) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Cloud returns the cloud the Fake's resources live in.
func (f *Fake) Cloud() *Cloud { return f.cloud }

// Prefix returns the resource name prefix of the Fake's runner.
func (f *Fake) Prefix() string { return f.prefix }

// Provisioned returns how many resources of this runner were created.
func (f *Fake) Provisioned() int { return f.cloud.Provisioned(f.prefix) }

// Decommissioned returns how many resources of this runner were deleted by
// a Decommission.
func (f *Fake) Decommissioned() int { return f.cloud.Decommissioned(f.prefix) }

// Launches returns how many resources of this runner were launched.
func (f *Fake) Launches() int { return f.cloud.LaunchCount(f.prefix) }

// Live returns how many resources of this runner exist.
func (f *Fake) Live() int { return f.cloud.Live(f.prefix) }

// Kill makes the job of resource name die (see Cloud.Kill).
func (f *Fake) Kill(name string) bool { return f.cloud.Kill(name) }

// shouldFail rolls the failure knob of op.
func (f *Fake) shouldFail(op Op) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.failures[op]
	if !ok {
		return false
	}
	if len(fl.Script) > 0 {
		fail := fl.Script[0]
		fl.Script = fl.Script[1:]
		return fail
	}
	return fl.Rate > 0 && f.rng.Float64() < fl.Rate
}

// enter counts a call of op and waits its latency, honouring ctx.
func (f *Fake) enter(ctx context.Context, op Op) error {
	f.mu.Lock()
	f.calls[op]++
	d := f.delays[op]
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func injected(op Op) error {
	return &executors.JobError{
		Public: fmt.Sprintf("The fake executor failed to %s the host of this job (injected failure).", op),
		Reason: coordinator.RunnerSystemFailure,
		Cause:  fmt.Errorf("%w: %s", ErrInjected, op),
	}
}

// Kind implements executors.Executor.
func (f *Fake) Kind() string { return config.ExecutorFake }

// Flavors implements executors.Executor; it returns a copy of the table.
func (f *Fake) Flavors(context.Context) (quota.Flavors, error) {
	return maps.Clone(f.flavors), nil
}

// ExpectedWeight implements executors.Executor: the weight of the flavor
// chosen by CI_CLEVER_CLOUD_FLAVOR (default and max flavor applied).
func (f *Fake) ExpectedWeight(_ context.Context, job *coordinator.Job) (float64, error) {
	fl, err := f.flavor(job)
	if err != nil {
		return 0, err
	}
	return fl.Weight(), nil
}

func (f *Fake) flavor(job *coordinator.Job) (quota.Flavor, error) {
	return executors.SelectFlavor(f.flavors, job, f.def, f.max)
}

// MaxWeight implements executors.Executor: the weight of the max flavor, or
// of the heaviest flavor.
func (f *Fake) MaxWeight(context.Context) (float64, error) {
	if f.max != "" {
		fl, err := f.flavors.Lookup(f.max)
		if err != nil {
			return 0, fmt.Errorf("max weight: %w", err)
		}
		return fl.Weight(), nil
	}
	return f.flavors.MaxWeight(), nil
}

// Provision implements executors.Executor.
func (f *Fake) Provision(ctx context.Context, spec executors.JobSpec) (executors.Resource, error) {
	if err := f.enter(ctx, OpProvision); err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	fl, err := f.flavor(spec.Job)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	if f.shouldFail(OpProvisionBefore) {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, injected("provision"))
	}
	cr, ok := f.cloud.create(spec.ResourceName, fl.Weight(), spec.Job.ID)
	if !ok {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, ErrNameTaken)
	}
	res := toResource(*cr)
	f.log.WithFields(logrus.Fields{"job_id": spec.Job.ID, "resource_id": res.id, "weight": res.weight}).Debug("fake resource created")
	if f.shouldFail(OpProvisionAfter) {
		return res, fmt.Errorf("provision %s after creation: %w", spec.ResourceName, injected("provision"))
	}
	return res, nil
}

// Launch implements executors.Executor. The first successful Launch of a
// resource calls OnLaunch.
func (f *Fake) Launch(ctx context.Context, r executors.Resource, spec executors.JobSpec) (executors.Resource, error) {
	res, err := f.own(r)
	if err != nil {
		return r, fmt.Errorf("launch: %w", err)
	}
	if res.launched {
		return res, nil
	}
	if err := f.enter(ctx, OpLaunch); err != nil {
		return res, fmt.Errorf("launch %s: %w", res.name, err)
	}
	if f.shouldFail(OpLaunch) {
		return res, fmt.Errorf("launch %s: %w", res.name, injected("launch"))
	}
	ok, already := f.cloud.launch(res.name, res.id)
	if !ok {
		return res, fmt.Errorf("launch %s: %w", res.name, &executors.JobError{
			Public: "The host provisioned for this job disappeared before the job could start.",
			Reason: coordinator.RunnerSystemFailure,
		})
	}
	launched := *res
	launched.launched = true
	if !already && f.onLaunch != nil {
		f.onLaunch(spec)
	}
	return &launched, nil
}

// Check implements executors.Executor.
func (f *Fake) Check(ctx context.Context, r executors.Resource) (executors.Status, error) {
	res, err := f.own(r)
	if err != nil {
		return executors.Status{}, fmt.Errorf("check: %w", err)
	}
	if err := f.enter(ctx, OpCheck); err != nil {
		return executors.Status{}, fmt.Errorf("check %s: %w", res.name, err)
	}
	if f.shouldFail(OpCheck) {
		return executors.Status{}, fmt.Errorf("check %s: %w", res.name, ErrInjected)
	}
	cr, ok := f.cloud.get(res.name)
	if !ok || cr.id != res.id {
		return executors.Status{Liveness: executors.Gone}, nil
	}
	return cr.status(), nil
}

// Decommission implements executors.Executor; a resource already gone is a
// success.
func (f *Fake) Decommission(ctx context.Context, r executors.Resource) error {
	res, err := f.own(r)
	if err != nil {
		return fmt.Errorf("decommission: %w", err)
	}
	if err := f.enter(ctx, OpDecommission); err != nil {
		return fmt.Errorf("decommission %s: %w", res.name, err)
	}
	if f.shouldFail(OpDecommission) {
		return fmt.Errorf("decommission %s: %w", res.name, ErrInjected)
	}
	if f.cloud.delete(res.name, res.id) {
		f.log.WithField("resource_id", res.id).Debug("fake resource deleted")
	}
	return nil
}

// dump is the state-file form of a fake resource.
type dump struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Weight   float64 `json:"weight"`
	Launched bool    `json:"launched"`
	JobID    int64   `json:"job_id"`
}

// Dump implements executors.Executor.
func (f *Fake) Dump(r executors.Resource) (json.RawMessage, error) {
	res, err := f.own(r)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	b, err := json.Marshal(dump{ID: res.id, Name: res.name, Weight: res.weight, Launched: res.launched, JobID: res.jobID})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", res.name, err)
	}
	return b, nil
}

// Restore implements executors.Executor.
func (f *Fake) Restore(_ context.Context, raw json.RawMessage) (executors.Resource, error) {
	var d dump
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("restore fake resource: %w", err)
	}
	if d.ID == "" || d.Name == "" {
		return nil, fmt.Errorf("restore fake resource: missing id or name")
	}
	return &Resource{id: d.ID, name: d.Name, weight: d.Weight, launched: d.Launched, jobID: d.JobID}, nil
}

// Adopt implements executors.Executor.
func (f *Fake) Adopt(ctx context.Context, name string, _ *coordinator.Job) (executors.Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("adopt %s: %w", name, err)
	}
	cr, ok := f.cloud.get(name)
	if !ok {
		return nil, nil
	}
	return toResource(cr), nil
}

// List implements executors.Executor: the resources whose name starts with
// the runner's prefix.
func (f *Fake) List(ctx context.Context) ([]executors.Listed, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list fake resources: %w", err)
	}
	var out []executors.Listed
	for _, name := range f.cloud.Names(f.prefix) {
		if cr, ok := f.cloud.get(name); ok {
			out = append(out, executors.Listed{ID: cr.id, Name: cr.name})
		}
	}
	return out, nil
}

func (f *Fake) own(r executors.Resource) (*Resource, error) {
	res, ok := r.(*Resource)
	if !ok || res == nil {
		return nil, fmt.Errorf("not a fake resource: %T", r)
	}
	return res, nil
}

// Resource is a Fake's resource: an immutable value.
type Resource struct {
	id       string
	name     string
	weight   float64
	launched bool
	jobID    int64
}

var _ executors.Resource = (*Resource)(nil)

func toResource(cr cloudResource) *Resource {
	return &Resource{id: cr.id, name: cr.name, weight: cr.weight, launched: cr.launched, jobID: cr.jobID}
}

// ID implements executors.Resource.
func (r *Resource) ID() string { return r.id }

// Name implements executors.Resource.
func (r *Resource) Name() string { return r.name }

// Weight implements executors.Resource.
func (r *Resource) Weight() float64 { return r.weight }

// Launched implements executors.Resource.
func (r *Resource) Launched() bool { return r.launched }

// JobID returns the id of the job the resource was provisioned for.
func (r *Resource) JobID() int64 { return r.jobID }
