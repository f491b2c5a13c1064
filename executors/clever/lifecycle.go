package clever

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
	"gitlab.com/paas-runner/paas-runner/paas/deploy"
)

// Heptapod's Docker-socket switch, always set on the app.
const mountDockerSocket = "CC_MOUNT_DOCKER_SOCKET"

// Provision creates the job's application and sets its environment. When
// setting the environment fails, the created resource is returned with the
// error so that the caller deletes it.
func (e *Executor) Provision(ctx context.Context, spec executors.JobSpec) (executors.Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	fl, err := e.selectFlavor(ctx, spec.Job)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	orga, group, err := e.orgaForJob(ctx, spec.Job)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
	}
	app, err := e.createApp(ctx, orga, spec.ResourceName, fl.APIName)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, err)
		}
		return nil, &executors.JobError{
			Public: "Clever Cloud could not create the application of this job" + publicAPIDetail(err),
			Reason: coordinator.RunnerSystemFailure,
			Cause:  fmt.Errorf("provision %s: %w", spec.ResourceName, err),
		}
	}
	weight := fl.Weight()
	if mib := app.Instance.MaxFlavor.MemoryMiB(); mib > 0 {
		weight = flavorWeight(mib)
	}
	res := &Resource{
		id: app.ID, name: spec.ResourceName, namespace: group, orgaID: orga.ID,
		deployURL: app.Deployment.HTTPURL, weight: weight,
	}
	log := e.log.WithFields(logrus.Fields{"job_id": jobID(spec), "resource_id": app.ID, "weight": weight})
	log.WithField("orga_id", orga.ID).Info("clever app created")
	if err := e.client.SetEnv(ctx, orga, app.ID, e.env()); err != nil {
		return res, &executors.JobError{
			Public: "Clever Cloud could not configure the application of this job" + publicAPIDetail(err),
			Reason: coordinator.RunnerSystemFailure,
			Cause:  fmt.Errorf("provision %s: %w", spec.ResourceName, err),
		}
	}
	return res, nil
}

// createApp creates the application, refreshing the instance type once when
// Clever says it is stale (9017).
func (e *Executor) createApp(ctx context.Context, orga clever.Orga, name, flavor string) (*clever.App, error) {
	for attempt := 0; ; attempt++ {
		it, err := e.client.DockerInstanceType(ctx)
		if err != nil {
			return nil, err
		}
		app, err := e.client.CreateApp(ctx, orga, clever.CreateAppRequest{
			Name:             name,
			Zone:             e.runner.CCZone,
			Deploy:           "git",
			InstanceType:     "docker",
			InstanceVersion:  it.Version,
			InstanceVariant:  e.runner.CCInstanceVariantUUID,
			InstanceLifetime: clever.LifetimeTask,
			MinInstances:     1,
			MaxInstances:     1,
			MinFlavor:        flavor,
			MaxFlavor:        flavor,
		})
		if err != nil && clever.IsInstanceNotFound(err) && attempt == 0 {
			e.log.WithField("error", err).Warn("clever instance type is stale; refreshing it")
			e.client.InvalidateInstanceType()
			continue
		}
		return app, err
	}
}

// env returns CC_MOUNT_DOCKER_SOCKET=true then cc_extra_env (sorted).
func (e *Executor) env() clever.Env {
	env := clever.Env{{Name: mountDockerSocket, Value: "true"}}
	keys := make([]string, 0, len(e.runner.CCExtraEnv))
	for k := range e.runner.CCExtraEnv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, clever.EnvVar{Name: k, Value: e.runner.CCExtraEnv[k]})
	}
	return env
}

// publicAPIDetail returns the Clever status and message of err for a job
// log (they hold no credential), or "".
func publicAPIDetail(err error) string {
	var ae *clever.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	msg := ae.Message
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		return fmt.Sprintf(" (HTTP %d)", ae.Status)
	}
	return fmt.Sprintf(" (HTTP %d: %s)", ae.Status, msg)
}

func jobID(spec executors.JobSpec) int64 {
	if spec.Job == nil {
		return 0
	}
	return spec.Job.ID
}

// Launch waits for the deployment repository, then pushes the build context
// to it. Launching a launched resource returns it unchanged; a branch
// already on the remote counts as launched.
func (e *Executor) Launch(ctx context.Context, res executors.Resource, spec executors.JobSpec) (executors.Resource, error) {
	r, err := e.asResource(res)
	if err != nil {
		return nil, err
	}
	if r.launched {
		return r, nil
	}
	orga, err := e.orgaForResource(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", r.id, err)
	}
	app, err := e.waitRepo(ctx, orga, r)
	if err != nil {
		return nil, err
	}
	url := app.Deployment.HTTPURL
	if url == "" {
		url = r.deployURL
	}
	bc, err := deploy.Build(e.runner, spec.Job, e.opts.Deploy)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", r.id, err)
	}
	log := e.log.WithFields(logrus.Fields{"job_id": jobID(spec), "resource_id": r.id})
	if err := e.push(ctx, log, url, orga, bc); err != nil {
		return nil, err
	}
	out := *r
	out.launched = true
	out.deployURL = url
	log.Info("job pushed to its clever app")
	return &out, nil
}

// waitRepo polls the application until its repository is CREATED, for at
// most cc_deployment_repo_timeout.
func (e *Executor) waitRepo(ctx context.Context, orga clever.Orga, r *Resource) (*clever.App, error) {
	timeout := e.runner.CCDeploymentRepoTimeout.Duration()
	step := e.runner.CCDeploymentRepoWaitStep.Duration()
	if step <= 0 {
		step = time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		app, err := e.client.GetApp(ctx, orga, r.id)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("wait for repository of clever app %s: %w", r.id, ctx.Err())
		case clever.IsNotFound(err):
			return nil, &executors.JobError{
				Public: "the Clever Cloud application of this job disappeared before the job could be handed to it",
				Reason: coordinator.RunnerSystemFailure,
				Cause:  err,
			}
		case err != nil:
			return nil, fmt.Errorf("wait for repository of clever app %s: %w", r.id, err)
		case app.Deployment.RepoState == clever.RepoCreated:
			return app, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, &executors.JobError{
				Public: fmt.Sprintf("the deployment repository of this job's Clever Cloud application was not ready after %s", timeout),
				Reason: coordinator.RunnerSystemFailure,
				Cause:  fmt.Errorf("clever app %s: repoState %q after %s", r.id, app.Deployment.RepoState, timeout),
			}
		}
		t := time.NewTimer(min(step, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for repository of clever app %s: %w", r.id, ctx.Err())
		case <-t.C:
		}
	}
}

// push pushes bc to url, retrying transient failures.
func (e *Executor) push(ctx context.Context, log logrus.FieldLogger, url string, orga clever.Orga, bc *deploy.Context) error {
	auth := deploy.Auth{Username: e.runner.CCAuthUser, Password: orga.Token}
	step := e.runner.CCDeploymentRepoWaitStep.Duration()
	var err error
	for attempt := 1; ; attempt++ {
		err = deploy.Push(ctx, url, auth, bc, deploy.DefaultBranch)
		if errors.Is(err, deploy.ErrAlreadyPushed) {
			log.Warn("deployment branch already exists: the job was already handed over (relaunch after a restart?)")
			return nil
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("push job to clever app: %w", ctx.Err())
		}
		if attempt >= e.opts.PushAttempts || permanentPushError(err) {
			break
		}
		log.WithFields(logrus.Fields{"attempt": attempt, "error": err}).Warn("push to clever app failed; retrying")
		if step > 0 {
			t := time.NewTimer(step)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("push job to clever app: %w", ctx.Err())
			case <-t.C:
			}
		}
	}
	return &executors.JobError{
		Public: "paas-runner could not push this job to its Clever Cloud application",
		Reason: coordinator.RunnerSystemFailure,
		Cause:  fmt.Errorf("push job to clever app: %w", err),
	}
}

func permanentPushError(err error) bool {
	return errors.Is(err, transport.ErrAuthenticationRequired) ||
		errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrRepositoryNotFound)
}

// Check reads the application: gone ⇒ Gone; running ⇒ Alive; otherwise
// Unknown (finished jobs are detected through the coordinator).
func (e *Executor) Check(ctx context.Context, res executors.Resource) (executors.Status, error) {
	r, err := e.asResource(res)
	if err != nil {
		return executors.Status{}, err
	}
	orga, err := e.orgaForResource(ctx, r)
	if err != nil {
		return executors.Status{}, fmt.Errorf("check %s: %w", r.id, err)
	}
	app, err := e.client.GetApp(ctx, orga, r.id)
	switch {
	case clever.IsNotFound(err):
		return executors.Status{Liveness: executors.Gone}, nil
	case err != nil:
		return executors.Status{}, fmt.Errorf("check %s: %w", r.id, err)
	case r.launched && (app.State == "SHOULD_BE_UP" || app.State == "WANTS_TO_BE_UP"):
		return executors.Status{Liveness: executors.Alive}, nil
	}
	return executors.Status{Liveness: executors.LivenessUnknown}, nil
}

// Decommission deletes the application; one already gone is a success.
func (e *Executor) Decommission(ctx context.Context, res executors.Resource) error {
	r, err := e.asResource(res)
	if err != nil {
		return err
	}
	orga, err := e.orgaForResource(ctx, r)
	if err != nil {
		return fmt.Errorf("decommission %s: %w", r.id, err)
	}
	if err := e.client.DeleteApp(ctx, orga, r.id); err != nil {
		return fmt.Errorf("decommission: %w", err)
	}
	e.log.WithField("resource_id", r.id).Info("clever app deleted")
	return nil
}

// Adopt finds the application created under name (after a crash between
// creation and the state write). Without a job, single-tenant runners look
// in their organisation and multi-tenant ones in every organisation seen.
func (e *Executor) Adopt(ctx context.Context, name string, job *coordinator.Job) (executors.Resource, error) {
	type candidate struct {
		orga  clever.Orga
		group string
	}
	var cands []candidate
	switch {
	case !e.runner.CCMultiTenant:
		cands = []candidate{{orga: e.fixedOrga()}}
	case rootGroup(job) != "":
		orga, group, err := e.orgaForJob(ctx, job)
		if err != nil {
			return nil, fmt.Errorf("adopt %s: %w", name, err)
		}
		cands = []candidate{{orga, group}}
	default:
		for _, k := range e.orgas.knownOrgas() {
			cands = append(cands, candidate(k))
		}
	}
	for _, c := range cands {
		app, err := e.client.FindApp(ctx, c.orga, name)
		if err != nil {
			return nil, fmt.Errorf("adopt %s: %w", name, err)
		}
		if app == nil {
			continue
		}
		weight := restoredDefaultWeight * 1.0
		if mib := app.Instance.MaxFlavor.MemoryMiB(); mib > 0 {
			weight = flavorWeight(mib)
		}
		e.log.WithField("resource_id", app.ID).Info("adopted clever app")
		return &Resource{
			id: app.ID, name: app.Name, namespace: c.group, orgaID: c.orga.ID,
			deployURL: app.Deployment.HTTPURL, weight: weight, launched: app.CommitID != "",
		}, nil
	}
	return nil, nil
}

// List returns the applications of this runner: names starting with
// executors.ResourcePrefix, plus Heptapod-style hpd-job-<token[:8]>- names
// (apps left by the Heptapod runner this one replaces). Multi-tenant runners
// list the organisations resolved since start.
func (e *Executor) List(ctx context.Context) ([]executors.Listed, error) {
	orgas := []clever.Orga{e.fixedOrga()}
	if e.runner.CCMultiTenant {
		orgas = orgas[:0]
		for _, k := range e.orgas.knownOrgas() {
			orgas = append(orgas, k.orga)
		}
	}
	prefix := executors.ResourcePrefix(e.runner)
	heptapod := "hpd-job-" + e.runner.HeptapodName() + "-"
	var out []executors.Listed
	var errs []error
	for _, o := range orgas {
		apps, err := e.client.ListApps(ctx, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range apps {
			switch {
			case strings.HasPrefix(a.Name, prefix):
				out = append(out, executors.Listed{ID: a.ID, Name: a.Name})
			case e.runner.HeptapodName() != "" && strings.HasPrefix(a.Name, heptapod):
				e.log.WithFields(logrus.Fields{"resource_id": a.ID, "name": a.Name}).
					Info("listing a clever app named by the Heptapod runner for this runner's token")
				out = append(out, executors.Listed{ID: a.ID, Name: a.Name})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("list clever apps: %w", err)
	}
	return out, nil
}
