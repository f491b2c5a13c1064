package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// AllowFakeExecutor lets Validate accept `executor = "fake"`. For tests
// only: production code must never set it.
var AllowFakeExecutor = false

// Executors lists the executor names Validate accepts (without "fake").
var Executors = []string{ExecutorCleverDocker, ExecutorLocalDocker, ExecutorLocalProcess}

// LogFormats lists the accepted log_format values ("runner" is gitlab-runner's
// default and means "text").
var LogFormats = []string{"text", "json", "runner"}

// TraceWatchFailureReasons lists the failure_reason values accepted in
// `[runners.paas_job_trace_watch]`: the reasons a runner may report to GitLab.
var TraceWatchFailureReasons = []string{
	"runner_system_failure", "unknown_failure", "script_failure", "api_failure",
	"stuck_or_timeout_failure", "runner_unsupported", "job_execution_timeout",
	"image_pull_failure", "runner_configuration_error",
	"runner_external_dependency_failure", "runner_interrupted",
}

// Problem is one configuration problem: the key path
// (`runners[1].cc_token`, `quota_computation.reference_runner`; runner
// indexes count from 0 in file order) and what is wrong with it.
//
//nolint:errname // an element of ValidationError.Problems, not returned alone.
type Problem struct {
	Path    string
	Message string
}

// Error implements error as "path: message".
func (p Problem) Error() string { return p.Path + ": " + p.Message }

// ValidationError is every problem of a configuration, in file order. Find
// it with errors.As; its Error is one problem per line.
type ValidationError struct {
	Problems []Problem
}

// Error joins the problems, one per line (as errors.Join does).
func (e *ValidationError) Error() string { return errors.Join(e.Unwrap()...).Error() }

// Unwrap returns each problem as an error.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems accumulates Problems.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate checks the whole configuration and returns a *ValidationError
// listing EVERY problem (unknown keys found by Parse included), or nil. It
// never includes a secret value in a message.
func (c *Config) Validate() error {
	ps := problems(slices.Clone(c.problems))
	c.validateGlobal(&ps)
	c.validateQuota(&ps)
	if len(c.Runners) == 0 {
		ps.add("runners", "at least one [[runners]] section is required")
	}
	names := map[string]int{}
	identities := map[string]int{}
	for i := range c.Runners {
		r := &c.Runners[i]
		p := fmt.Sprintf("runners[%d]", i)
		r.validate(&ps, p)
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				ps.add(p+".name", "%q is also the name of runners[%d]", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		if r.URL != "" && !r.Token.IsZero() {
			id := strings.TrimRight(r.URL, "/") + "\n" + r.Token.Reveal()
			if j, dup := identities[id]; dup {
				ps.add(p+".token", "same url and token as runners[%d]", j)
			} else {
				identities[id] = i
			}
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

func (c *Config) validateGlobal(ps *problems) {
	if c.Concurrent <= 0 {
		ps.add("concurrent", "must be > 0")
	}
	positive := []struct {
		key string
		v   Seconds
	}{
		{"check_interval", c.CheckInterval},
		{"job_progress_poll_interval", c.JobProgressPollInterval},
		{"shutdown_timeout", c.ShutdownTimeout},
		{"reconcile_interval", c.ReconcileInterval},
	}
	for _, k := range positive {
		if k.v <= 0 {
			ps.add(k.key, "must be > 0")
		}
	}
	if c.PaasMinSecondsBetweenLaunches < 0 {
		ps.add("paas_min_seconds_between_launches", "must be >= 0")
	}
	if c.PaasMaxConcurrentProvisioning <= 0 {
		ps.add("paas_max_concurrent_provisioning", "must be > 0")
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		ps.add("log_level", "%q is not one of trace, debug, info, warn, error, fatal, panic", c.LogLevel)
	}
	if !slices.Contains(LogFormats, c.LogFormat) {
		ps.add("log_format", "%q is not one of %s", c.LogFormat, strings.Join(LogFormats, ", "))
	}
	if c.StateFile == "" {
		ps.add("state_file", "required")
	}
}

func (c *Config) validateQuota(ps *problems) {
	q := c.QuotaComputation
	if q == nil {
		ps.add("quota_computation", "section is mandatory")
		return
	}
	ref := c.RunnerByName(q.ReferenceRunner)
	switch {
	case q.ReferenceRunner == "":
		ps.add("quota_computation.reference_runner", "required")
	case ref == nil:
		ps.add("quota_computation.reference_runner", "%q names no runner", q.ReferenceRunner)
	}
	switch {
	case q.ReferenceFlavor == "":
		ps.add("quota_computation.reference_flavor", "required")
	case ref != nil && ref.HasStaticFlavors():
		if _, ok := ref.StaticFlavors()[q.ReferenceFlavor]; !ok {
			ps.add("quota_computation.reference_flavor", "%q is not a flavor of runner %q (flavors: %s)",
				q.ReferenceFlavor, q.ReferenceRunner, strings.Join(sortedFlavorNames(ref.StaticFlavors()), ", "))
		}
	}
	if q.ReferenceJobsCount <= 0 {
		ps.add("quota_computation.reference_jobs_count", "must be > 0")
	}
}

func (r *Runner) validate(ps *problems, p string) {
	if r.URL == "" {
		ps.add(p+".url", "required")
	} else if !isHTTPURL(r.URL) {
		ps.add(p+".url", "must be an absolute http or https URL")
	}
	if r.Token.IsZero() {
		ps.add(p+".token", "required")
	}
	switch {
	case r.Executor == "":
		ps.add(p+".executor", "required")
	case r.Executor == ExecutorFake && AllowFakeExecutor:
	case !slices.Contains(Executors, r.Executor):
		ps.add(p+".executor", "%q is not one of %s", r.Executor, strings.Join(Executors, ", "))
	}
	if r.InnerRunner != InnerRunnerHeptapod && r.InnerRunner != InnerRunnerAgent {
		ps.add(p+".inner_runner", "%q is not one of %s, %s", r.InnerRunner, InnerRunnerHeptapod, InnerRunnerAgent)
	}
	if r.ResourceNamePrefix == "" {
		ps.add(p+".resource_name_prefix", "must not be empty")
	}
	if r.PaasKeepResourcesForReuseSeconds < 0 {
		ps.add(p+".paas_keep_resources_for_reuse_seconds", "must be >= 0")
	}
	if tw := r.TraceWatch; tw != nil {
		tp := p + ".paas_job_trace_watch"
		if tw.Token.IsZero() {
			ps.add(tp+".token", "required when the section is present")
		}
		if tw.TimeoutSeconds <= 0 {
			ps.add(tp+".timeout_seconds", "must be > 0")
		}
		if tw.PollStep <= 0 {
			ps.add(tp+".poll_step", "must be > 0")
		}
		if !slices.Contains(TraceWatchFailureReasons, tw.FailureReason) {
			ps.add(tp+".failure_reason", "%q is not a failure reason a runner may report", tw.FailureReason)
		}
	}
	switch r.Executor {
	case ExecutorCleverDocker:
		r.validateClever(ps, p)
	case ExecutorLocalDocker:
		if !strings.HasPrefix(r.Host, "unix://") && !strings.HasPrefix(r.Host, "tcp://") {
			ps.add(p+".host", "must be a unix:// or tcp:// URL")
		}
		r.validateLocalFlavors(ps, p)
	case ExecutorLocalProcess:
		if !filepath.IsAbs(r.WorkRoot) {
			ps.add(p+".work_root", "must be an absolute path")
		}
		r.validateLocalFlavors(ps, p)
	case ExecutorFake:
		r.validateLocalFlavors(ps, p)
	}
}

func (r *Runner) validateClever(ps *problems, p string) {
	if !r.CCMultiTenant {
		if r.CCOrgaID == "" {
			ps.add(p+".cc_orga_id", "required when cc_multi_tenant is false")
		}
		if r.CCToken.IsZero() {
			ps.add(p+".cc_token", "required when cc_multi_tenant is false")
		}
	} else {
		if r.CCOrgaIDAttribute == "" {
			ps.add(p+".cc_orga_id_attribute", "must not be empty when cc_multi_tenant is true")
		}
		if r.CCOrgaTokenAttribute == "" {
			ps.add(p+".cc_orga_token_attribute", "must not be empty when cc_multi_tenant is true")
		}
	}
	if !isHTTPURL(r.CCAPIURL) {
		ps.add(p+".cc_api_url", "must be an absolute http or https URL")
	}
	if r.CCAuthScheme != "token" && r.CCAuthScheme != "bearer" {
		ps.add(p+".cc_auth_scheme", "%q is not one of token, bearer", r.CCAuthScheme)
	}
	nonEmpty := []struct{ key, v string }{
		{"cc_zone", r.CCZone},
		{"cc_default_flavor", r.CCDefaultFlavor},
		{"cc_flavor_context", r.CCFlavorContext},
		{"cc_instance_variant_uuid", r.CCInstanceVariantUUID},
		{"cc_auth_user", r.CCAuthUser},
	}
	for _, k := range nonEmpty {
		if k.v == "" {
			ps.add(p+"."+k.key, "must not be empty")
		}
	}
	if r.CCDeploymentRepoTimeout <= 0 {
		ps.add(p+".cc_deployment_repo_timeout", "must be > 0")
	}
	if r.CCDeploymentRepoWaitStep <= 0 {
		ps.add(p+".cc_deployment_repo_wait_step", "must be > 0")
	}
}

func (r *Runner) validateLocalFlavors(ps *problems, p string) {
	for _, name := range sortedFlavorNames(r.LocalFlavors) {
		if r.LocalFlavors[name].MemoryMiB <= 0 {
			ps.add(fmt.Sprintf("%s.local_flavors.%s.memory_mib", p, name), "must be > 0")
		}
		if r.LocalFlavors[name].CPUs < 0 {
			ps.add(fmt.Sprintf("%s.local_flavors.%s.cpus", p, name), "must be >= 0")
		}
	}
	if _, ok := r.StaticFlavors()[r.LocalDefaultFlavor]; !ok {
		ps.add(p+".local_default_flavor", "%q is not in local_flavors (flavors: %s)",
			r.LocalDefaultFlavor, strings.Join(sortedFlavorNames(r.StaticFlavors()), ", "))
	}
}

// HasStaticFlavors reports whether the runner's flavors are known from the
// configuration alone (local and fake executors), as opposed to Clever
// flavors listed by the API at run time.
func (r *Runner) HasStaticFlavors() bool {
	switch r.Executor {
	case ExecutorLocalDocker, ExecutorLocalProcess, ExecutorFake:
		return true
	}
	return false
}

// StaticFlavors returns the flavor table of a local runner: local_flavors,
// or DefaultLocalFlavors() when the file has none. It is meaningless for
// Clever runners (see HasStaticFlavors).
func (r *Runner) StaticFlavors() map[string]Flavor {
	if len(r.LocalFlavors) > 0 {
		return r.LocalFlavors
	}
	return DefaultLocalFlavors()
}

func sortedFlavorNames(m map[string]Flavor) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
