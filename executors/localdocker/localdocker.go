package localdocker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// LabelWeight is the label holding a resource's weight.
const LabelWeight = "paas-runner.weight"

// cleanupTimeout bounds the clean-up calls made after a failure, on a
// context that is not the (possibly cancelled) caller's.
const cleanupTimeout = time.Minute

func init() {
	executors.Register(config.ExecutorLocalDocker, func(r *config.Runner, deps executors.Deps) (executors.Executor, error) {
		return New(r, deps, Options{})
	})
}

// Options tune an Executor beyond its configuration section.
type Options struct {
	// Docker is the engine client to use (default: a client of the
	// runner's host).
	Docker *docker.Client
	// NetworkMode is the network of job containers ("host" lets tests'
	// containers reach a fake coordinator on 127.0.0.1); empty = default.
	NetworkMode string
	// AgentBinary is the paas-runner binary copied into images for
	// inner_runner = "agent" without agent_image (default: the running
	// executable).
	AgentBinary string
}

// Executor is the local-docker executor of one runner section. It is safe
// for concurrent use; it keeps no per-job state (everything is in the
// Resource values and in Docker labels).
type Executor struct {
	runner  *config.Runner
	docker  *docker.Client
	log     logrus.FieldLogger
	opts    Options
	flavors quota.Flavors
	def     string
	limits  bool
}

var _ executors.Executor = (*Executor)(nil)

// New returns the executor of runner r.
func New(r *config.Runner, deps executors.Deps, opts Options) (*Executor, error) {
	if opts.Docker == nil {
		c, err := docker.New(r.Host)
		if err != nil {
			return nil, fmt.Errorf("runner %q: %w", r.Label(), err)
		}
		opts.Docker = c
	}
	if r.InnerRunner == config.InnerRunnerAgent && r.AgentImage == "" && opts.AgentBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("runner %q: locate the agent binary: %w", r.Label(), err)
		}
		opts.AgentBinary = exe
	}
	log := deps.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	flavors, def := executors.StaticFlavors(r)
	return &Executor{
		runner:  r,
		docker:  opts.Docker,
		log:     log.WithFields(logrus.Fields{"runner": r.Label(), "executor": config.ExecutorLocalDocker}),
		opts:    opts,
		flavors: flavors,
		def:     def,
		limits:  len(r.LocalFlavors) > 0,
	}, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// Resource is one job's image and container.
type Resource struct {
	name        string
	image       string
	containerID string
	weight      float64
	launched    bool
}

// ID implements executors.Resource: the image tag (the lowercased name),
// stable from Provision to Decommission.
func (r *Resource) ID() string { return r.image }

// Name implements executors.Resource.
func (r *Resource) Name() string { return r.name }

// Weight implements executors.Resource.
func (r *Resource) Weight() float64 { return r.weight }

// Launched implements executors.Resource.
func (r *Resource) Launched() bool { return r.launched }

// ContainerID returns the id of the job's container ("" before Launch).
func (r *Resource) ContainerID() string { return r.containerID }

// String describes the resource for logs.
func (r *Resource) String() string {
	return fmt.Sprintf("LocalDockerContainer(name=%q, container=%.12s, weight=%g, launched=%t)", r.name, r.containerID, r.weight, r.launched)
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return config.ExecutorLocalDocker }

// Flavors implements executors.Executor: local_flavors, or one flavor "M"
// weighing 1.
func (e *Executor) Flavors(context.Context) (quota.Flavors, error) {
	return maps.Clone(e.flavors), nil
}

// ExpectedWeight implements executors.Executor.
func (e *Executor) ExpectedWeight(_ context.Context, job *coordinator.Job) (float64, error) {
	fl, err := e.flavor(job)
	if err != nil {
		return 0, err
	}
	return fl.Weight(), nil
}

func (e *Executor) flavor(job *coordinator.Job) (quota.Flavor, error) {
	return executors.SelectFlavor(e.flavors, job, e.def, "")
}

// MaxWeight implements executors.Executor.
func (e *Executor) MaxWeight(context.Context) (float64, error) {
	return e.flavors.MaxWeight(), nil
}

// imageTag returns the image tag of a resource name.
func imageTag(name string) string { return strings.ToLower(name) }

func (e *Executor) labels(name string, jobID int64, weight float64) map[string]string {
	return map[string]string{
		docker.LabelRunner: e.runner.ShortID(),
		docker.LabelJobID:  strconv.FormatInt(jobID, 10),
		docker.LabelName:   name,
		LabelWeight:        strconv.FormatFloat(weight, 'g', -1, 64),
	}
}

// Provision implements executors.Executor: it builds the job's image from
// the generated build context. A failed build leaves nothing behind; if
// the image exists despite an error (a cancelled build that completed), it
// is returned with the error so that it gets removed; when the daemon
// cannot even tell, the labelled image is left to reconciliation.
func (e *Executor) Provision(ctx context.Context, spec executors.JobSpec) (executors.Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	fl, err := e.flavor(spec.Job)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	res := &Resource{name: spec.ResourceName, image: imageTag(spec.ResourceName), weight: fl.Weight()}
	if err := e.build(ctx, res, spec); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// Return the resource only if the image exists despite the error;
		// if the daemon cannot tell, reconciliation finds it by its labels.
		if exists, ierr := e.docker.ImageExists(cctx, res.image); ierr == nil && exists {
			return res, err
		}
		return nil, err
	}
	e.log.WithFields(logrus.Fields{"job_id": spec.Job.ID, "resource_id": res.image, "weight": res.weight}).Info("built job image")
	return res, nil
}

// build generates the build context of spec and builds it into res.image.
func (e *Executor) build(ctx context.Context, res *Resource, spec executors.JobSpec) error {
	bc, err := deploy.Build(e.runner, spec.Job, deploy.Options{AgentBinary: e.opts.AgentBinary})
	if err != nil {
		return fmt.Errorf("provision %s: %w", res.name, err)
	}
	var buf bytes.Buffer
	if err := bc.WriteTar(&buf); err != nil {
		return fmt.Errorf("provision %s: %w", res.name, err)
	}
	if err := e.docker.BuildImage(ctx, res.image, &buf, e.labels(res.name, spec.Job.ID, res.weight)); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("provision %s: %w", res.name, err)
		}
		return fmt.Errorf("provision %s: %w", res.name, &executors.JobError{
			Public: "paas-runner could not build the image of this job's host",
			Reason: coordinator.RunnerSystemFailure,
			Cause:  err,
		})
	}
	return nil
}

func (e *Executor) resource(res executors.Resource) (*Resource, error) {
	r, ok := res.(*Resource)
	if !ok || r == nil {
		return nil, fmt.Errorf("local-docker: foreign resource %T", res)
	}
	return r, nil
}

// Launch implements executors.Executor: it starts the job's container (the
// image is rebuilt first if it is gone) and returns once it runs. The
// container's end is seen by Check.
func (e *Executor) Launch(ctx context.Context, res executors.Resource, spec executors.JobSpec) (executors.Resource, error) {
	r, err := e.resource(res)
	if err != nil {
		return nil, err
	}
	if r.launched {
		return r, nil
	}
	exists, err := e.docker.ImageExists(ctx, r.image)
	if err != nil {
		return r, fmt.Errorf("launch %s: %w", r.name, err)
	}
	if !exists {
		if err := e.build(ctx, r, spec); err != nil {
			return r, fmt.Errorf("launch: %w", err)
		}
	}
	run := docker.RunSpec{
		Image:       r.image,
		Name:        r.name,
		Labels:      e.labels(r.name, spec.Job.ID, r.weight),
		MountSocket: true,
		SocketPath:  e.docker.SocketPath(),
		NetworkMode: e.opts.NetworkMode,
	}
	if e.limits {
		if fl, err := e.flavor(spec.Job); err == nil {
			run.MemoryBytes = int64(fl.MemoryMiB) << 20
			run.NanoCPUs = int64(fl.CPUs * 1e9)
		}
	}
	id, err := e.docker.Run(ctx, run)
	out := *r
	out.containerID = id
	if err != nil {
		return &out, fmt.Errorf("launch %s: %w", r.name, &executors.JobError{
			Public: "paas-runner could not start this job's container",
			Reason: coordinator.RunnerSystemFailure,
			Cause:  err,
		})
	}
	out.launched = true
	e.log.WithFields(logrus.Fields{"job_id": spec.Job.ID, "resource_id": r.image}).Info("started job container")
	return &out, nil
}

// Check implements executors.Executor: Alive while the container runs,
// Exited with its code once it ended (a container that died before the
// inner runner reported is a failed job), Gone when neither container nor
// image exists.
func (e *Executor) Check(ctx context.Context, res executors.Resource) (executors.Status, error) {
	r, err := e.resource(res)
	if err != nil {
		return executors.Status{}, err
	}
	ref := r.containerID
	if ref == "" {
		ref = r.name
	}
	st, err := e.docker.Inspect(ctx, ref)
	if err != nil {
		return executors.Status{}, fmt.Errorf("check %s: %w", r.name, err)
	}
	switch st.Status {
	case docker.StatusRunning, docker.StatusCreated:
		return executors.Status{Liveness: executors.Alive}, nil
	case docker.StatusExited:
		return executors.Status{Liveness: executors.Exited, ExitCode: st.ExitCode}, nil
	}
	exists, err := e.docker.ImageExists(ctx, r.image)
	if err != nil {
		return executors.Status{}, fmt.Errorf("check %s: %w", r.name, err)
	}
	if exists && !r.launched {
		return executors.Status{Liveness: executors.LivenessUnknown}, nil
	}
	return executors.Status{Liveness: executors.Gone}, nil
}

// Decommission implements executors.Executor: force-removes the container
// and the image; already gone is a success.
func (e *Executor) Decommission(ctx context.Context, res executors.Resource) error {
	r, err := e.resource(res)
	if err != nil {
		return err
	}
	ref := r.containerID
	if ref == "" {
		ref = r.name
	}
	if err := e.docker.Remove(ctx, ref, r.image); err != nil {
		return fmt.Errorf("decommission %s: %w", r.name, err)
	}
	// Removing by name is not enough: a daemon interrupted mid-removal (a
	// restart) can untag an image and fail, leaving an untagged image
	// that a retry by tag no longer finds. Whatever still carries this
	// resource's labels is removed by id.
	if err := e.removeLeftovers(ctx, r.name); err != nil {
		return fmt.Errorf("decommission %s: %w", r.name, err)
	}
	e.log.WithField("resource_id", r.image).Info("removed job container and image")
	return nil
}

// removeLeftovers removes, by id, every container and image labelled with
// this runner and resource name.
func (e *Executor) removeLeftovers(ctx context.Context, name string) error {
	sel := map[string]string{docker.LabelRunner: e.runner.ShortID(), docker.LabelName: name}
	cs, err := e.docker.ListByLabel(ctx, sel)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := e.docker.Remove(ctx, c.ID, ""); err != nil {
			return err
		}
	}
	imgs, err := e.docker.ImagesByLabel(ctx, sel)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if err := e.docker.Remove(ctx, "", img.ID); err != nil {
			return err
		}
	}
	return nil
}

// dump is the state-file form of a Resource.
type dump struct {
	Name        string  `json:"name"`
	ContainerID string  `json:"container_id,omitempty"`
	Image       string  `json:"image"`
	Weight      float64 `json:"weight"`
	Launched    bool    `json:"launched"`
}

// Dump implements executors.Executor.
func (e *Executor) Dump(res executors.Resource) (json.RawMessage, error) {
	r, err := e.resource(res)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(dump{Name: r.name, ContainerID: r.containerID, Image: r.image, Weight: r.weight, Launched: r.launched})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", r.name, err)
	}
	return b, nil
}

// Restore implements executors.Executor. Besides Dump output it accepts the
// Heptapod local-docker dump, a bare JSON string (the resource id, which is
// also the image tag): weight 1, launched.
func (e *Executor) Restore(_ context.Context, raw json.RawMessage) (executors.Resource, error) {
	var bare string
	if err := json.Unmarshal(raw, &bare); err == nil {
		if bare == "" {
			return nil, errors.New("restore local-docker resource: empty id")
		}
		return &Resource{name: bare, image: imageTag(bare), weight: 1, launched: true}, nil
	}
	var d dump
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("restore local-docker resource: %w", err)
	}
	if d.Name == "" {
		return nil, errors.New("restore local-docker resource: no name")
	}
	if d.Image == "" {
		d.Image = imageTag(d.Name)
	}
	if d.Weight <= 0 {
		d.Weight = 1
	}
	return &Resource{name: d.Name, image: d.Image, containerID: d.ContainerID, weight: d.Weight, launched: d.Launched}, nil
}

// Adopt implements executors.Executor: it finds the container or image
// created under name (job may be nil, e.g. for an orphan found by
// reconciliation, which is then decommissioned).
func (e *Executor) Adopt(ctx context.Context, name string, job *coordinator.Job) (executors.Resource, error) {
	res := &Resource{name: name, image: imageTag(name), weight: 1}
	if job != nil {
		if fl, err := e.flavor(job); err == nil {
			res.weight = fl.Weight()
		}
	}
	cs, err := e.docker.ListByLabel(ctx, map[string]string{docker.LabelRunner: e.runner.ShortID(), docker.LabelName: name})
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w", name, err)
	}
	if len(cs) > 0 {
		res.containerID, res.launched = cs[0].ID, true
		res.weight = labelWeight(cs[0].Labels, res.weight)
		return res, nil
	}
	imgs, err := e.docker.ImagesByLabel(ctx, map[string]string{docker.LabelRunner: e.runner.ShortID(), docker.LabelName: name})
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w", name, err)
	}
	if len(imgs) == 0 {
		return nil, nil //nolint:nilnil // documented: nothing to adopt
	}
	res.weight = labelWeight(imgs[0].Labels, res.weight)
	return res, nil
}

func labelWeight(labels map[string]string, def float64) float64 {
	if w, err := strconv.ParseFloat(labels[LabelWeight], 64); err == nil && w > 0 {
		return w
	}
	return def
}

// List implements executors.Executor: every container or image labelled
// with this runner's short id and named with its resource prefix.
func (e *Executor) List(ctx context.Context) ([]executors.Listed, error) {
	sel := map[string]string{docker.LabelRunner: e.runner.ShortID()}
	cs, err := e.docker.ListByLabel(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list local-docker resources: %w", err)
	}
	imgs, err := e.docker.ImagesByLabel(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list local-docker resources: %w", err)
	}
	prefix := executors.ResourcePrefix(e.runner)
	seen := map[string]bool{}
	var out []executors.Listed
	add := func(labels map[string]string) {
		name := labels[docker.LabelName]
		if name == "" || seen[name] || !strings.HasPrefix(name, prefix) {
			return
		}
		seen[name] = true
		out = append(out, executors.Listed{ID: imageTag(name), Name: name})
	}
	for _, c := range cs {
		add(c.Labels)
	}
	for _, img := range imgs {
		add(img.Labels)
	}
	return out, nil
}
