package clever

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/quota"
)

func init() {
	executors.Register(config.ExecutorCleverDocker, func(r *config.Runner, deps executors.Deps) (executors.Executor, error) {
		opts := Options{Logger: deps.Logger}
		if deps.Coordinator != nil {
			opts.Groups = deps.Coordinator
		}
		if deps.RequestObserver != nil {
			opts.Client.Observer = clever.Observer(deps.RequestObserver)
		}
		return New(r, opts)
	})
}

// DefaultPushAttempts is how many times a push is tried (Heptapod: 3).
const DefaultPushAttempts = 3

// Options tune an Executor. The zero value is usable for single-tenant
// runners.
type Options struct {
	// Logger is the parent logger (default: discard).
	Logger logrus.FieldLogger
	// Groups reads group custom attributes; required when cc_multi_tenant.
	Groups GroupAttributes
	// Client tunes the Clever API client; BaseURL and AuthScheme default to
	// the runner's cc_api_url and cc_auth_scheme.
	Client clever.Options
	// OrgaTTL is how long a group's organisation is cached (default 5 min).
	OrgaTTL time.Duration
	// Deploy tunes the build context.
	Deploy deploy.Options
	// PushAttempts is how many times a failing push is tried (default 3).
	PushAttempts int
	// Now replaces time.Now (caches).
	Now func() time.Time
}

// Executor is the clever-docker executor of one runner section. It is safe
// for concurrent use.
type Executor struct {
	runner *config.Runner
	client *clever.Client
	orgas  *orgaResolver
	log    logrus.FieldLogger
	opts   Options
	prefix string
}

var _ executors.Executor = (*Executor)(nil)

// New returns the executor of runner r.
func New(r *config.Runner, opts Options) (*Executor, error) {
	if r.CCMultiTenant {
		if opts.Groups == nil {
			return nil, fmt.Errorf("runner %q: cc_multi_tenant needs a coordinator client to read group attributes", r.Label())
		}
	} else if r.CCOrgaID == "" || r.CCToken.IsZero() {
		return nil, fmt.Errorf("runner %q: cc_orga_id and cc_token are required unless cc_multi_tenant = true", r.Label())
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = l
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OrgaTTL <= 0 {
		opts.OrgaTTL = DefaultOrgaTTL
	}
	if opts.PushAttempts <= 0 {
		opts.PushAttempts = DefaultPushAttempts
	}
	if r.InnerRunner == config.InnerRunnerAgent && r.AgentImage == "" && opts.Deploy.AgentBinary == "" {
		// The agent pushed to the app is this very (static) binary.
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("runner %q: locate the agent binary: %w", r.Label(), err)
		}
		opts.Deploy.AgentBinary = exe
	}
	log := opts.Logger.WithFields(logrus.Fields{"runner": r.Label(), "executor": config.ExecutorCleverDocker})
	co := opts.Client
	if co.BaseURL == "" {
		co.BaseURL = r.CCAPIURL
	}
	if co.AuthScheme == "" {
		co.AuthScheme = r.CCAuthScheme
	}
	if co.Logger == nil {
		co.Logger = log
	}
	if co.Now == nil {
		co.Now = opts.Now
	}
	client, err := clever.New(co)
	if err != nil {
		return nil, fmt.Errorf("runner %q: %w", r.Label(), err)
	}
	attrToken := r.CCGitlabNamespaceAttributesToken
	if attrToken.IsZero() {
		attrToken = r.Token
	}
	idAttr, tokenAttr := r.CCOrgaIDAttribute, r.CCOrgaTokenAttribute
	if idAttr == "" {
		idAttr = config.DefaultCCOrgaIDAttribute
	}
	if tokenAttr == "" {
		tokenAttr = config.DefaultCCOrgaTokenAttribute
	}
	prefix := r.CCFlavorNamePrefix
	if prefix == "" {
		prefix = r.CCFlavorContext + "-"
	}
	return &Executor{
		runner: r,
		client: client,
		orgas: &orgaResolver{
			groups: opts.Groups, token: attrToken, idAttr: idAttr, tokenAttr: tokenAttr,
			ttl: opts.OrgaTTL, now: opts.Now,
			byGroup: map[string]orgaEntry{}, known: map[string]knownOrga{},
		},
		log:    log,
		opts:   opts,
		prefix: prefix,
	}, nil
}

// Kind returns config.ExecutorCleverDocker.
func (e *Executor) Kind() string { return config.ExecutorCleverDocker }

// Client returns the executor's Clever API client.
func (e *Executor) Client() *clever.Client { return e.client }

// Flavors returns the available flavors of cc_flavor_context, keyed by name
// without cc_flavor_name_prefix.
func (e *Executor) Flavors(ctx context.Context) (quota.Flavors, error) {
	return e.flavorTable(ctx, "")
}

func (e *Executor) flavorTable(ctx context.Context, want string) (quota.Flavors, error) {
	table, err := e.client.FlavorTable(ctx, e.runner.CCFlavorContext, e.prefix, want)
	if err != nil {
		return nil, fmt.Errorf("runner %q: %w", e.runner.Label(), err)
	}
	return table, nil
}

// selectFlavor chooses the flavor of a job (CI_CLEVER_CLOUD_FLAVOR, else
// cc_default_flavor, capped by cc_max_flavor). A bad choice is a *JobError.
func (e *Executor) selectFlavor(ctx context.Context, job *coordinator.Job) (quota.Flavor, error) {
	requested := ""
	if job != nil {
		requested, _ = job.Variable(quota.FlavorVariable)
	}
	want := requested
	if want == "" {
		want = e.runner.CCDefaultFlavor
	}
	table, err := e.flavorTable(ctx, want)
	if err != nil {
		return quota.Flavor{}, err
	}
	fl, err := quota.Select(table, requested, e.runner.CCDefaultFlavor, e.runner.CCMaxFlavor)
	if err != nil {
		if fe, ok := errors.AsType[*quota.FlavorError](err); ok {
			reason := coordinator.ScriptFailure
			if _, ok := table[fe.Max]; fe.Max != "" && !ok {
				reason = coordinator.RunnerConfigError
			}
			return quota.Flavor{}, &executors.JobError{Public: fe.Error(), Reason: reason, Cause: err}
		}
		return quota.Flavor{}, fmt.Errorf("select flavor: %w", err)
	}
	return fl, nil
}

// ExpectedWeight returns the weight of the flavor the job asks for.
func (e *Executor) ExpectedWeight(ctx context.Context, job *coordinator.Job) (float64, error) {
	fl, err := e.selectFlavor(ctx, job)
	if err != nil {
		return 0, err
	}
	return fl.Weight(), nil
}

// MaxWeight returns the weight of cc_max_flavor, or of the heaviest
// available flavor when it is not set.
func (e *Executor) MaxWeight(ctx context.Context) (float64, error) {
	table, err := e.flavorTable(ctx, e.runner.CCMaxFlavor)
	if err != nil {
		return 0, err
	}
	if e.runner.CCMaxFlavor == "" {
		return table.MaxWeight(), nil
	}
	fl, ok := table[e.runner.CCMaxFlavor]
	if !ok {
		return 0, fmt.Errorf("runner %q: cc_max_flavor %q is not an available flavor (%v)", e.runner.Label(), e.runner.CCMaxFlavor, table.Names())
	}
	return fl.Weight(), nil
}
