package clever

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
)

// RootNamespaceVariable is the job variable naming the top-level group, used
// when the payload has no job_info.root_namespace_id.
const RootNamespaceVariable = "CI_PROJECT_ROOT_NAMESPACE"

// DefaultOrgaTTL is how long the organisation of a group is cached.
const DefaultOrgaTTL = 5 * time.Minute

// GroupAttributes reads the custom attributes of a GitLab group given by id
// or full path; *coordinator.Client implements it.
type GroupAttributes interface {
	GroupCustomAttributes(ctx context.Context, privateToken config.Secret, group string) (map[string]string, error)
}

// errNoOrga is the cause of a resource whose organisation cannot be used.
var errNoOrga = errors.New("clever organisation unavailable")

type orgaEntry struct {
	orga    clever.Orga
	fetched time.Time
}

// orgaResolver resolves organisations of groups, with a TTL cache.
type orgaResolver struct {
	groups    GroupAttributes
	token     config.Secret
	idAttr    string
	tokenAttr string
	ttl       time.Duration
	now       func() time.Time

	mu sync.Mutex
	// byGroup caches organisations by group (guarded by mu).
	byGroup map[string]orgaEntry
	// known holds every organisation ever resolved, by id, with the group
	// it was last resolved for (guarded by mu), for List and Adopt.
	known map[string]knownOrga
}

// knownOrga is an organisation and a group it was resolved for.
type knownOrga struct {
	orga  clever.Orga
	group string
}

// rootGroup returns the top-level group of a job: job_info.root_namespace_id
// when present, else the CI_PROJECT_ROOT_NAMESPACE variable.
func rootGroup(job *coordinator.Job) string {
	if job == nil {
		return ""
	}
	if job.JobInfo.RootNamespaceID > 0 {
		return strconv.FormatInt(job.JobInfo.RootNamespaceID, 10)
	}
	v, _ := job.Variable(RootNamespaceVariable)
	return v
}

// resolve returns the organisation of group. Failures are *JobError.
func (o *orgaResolver) resolve(ctx context.Context, group string) (clever.Orga, error) {
	now := o.now()
	o.mu.Lock()
	e, ok := o.byGroup[group]
	o.mu.Unlock()
	if ok && now.Sub(e.fetched) < o.ttl {
		return e.orga, nil
	}
	attrs, err := o.groups.GroupCustomAttributes(ctx, o.token, group)
	if err != nil {
		if ctx.Err() != nil {
			return clever.Orga{}, fmt.Errorf("resolve clever organisation of group %s: %w", group, ctx.Err())
		}
		return clever.Orga{}, &executors.JobError{
			Public: fmt.Sprintf("paas-runner could not read the custom attributes of GitLab group %s "+
				"to find its Clever Cloud organisation", group),
			Reason: coordinator.RunnerSystemFailure,
			Cause:  err,
		}
	}
	id, token := attrs[o.idAttr], attrs[o.tokenAttr]
	var missing []string
	if id == "" {
		missing = append(missing, o.idAttr)
	}
	if token == "" {
		missing = append(missing, o.tokenAttr)
	}
	if len(missing) > 0 {
		return clever.Orga{}, &executors.JobError{
			Public: fmt.Sprintf("GitLab group %s has no custom attribute %s: this runner cannot tell which "+
				"Clever Cloud organisation to run its jobs in; a GitLab administrator must set the "+
				"group's %s and %s custom attributes", group, joinQuoted(missing), o.idAttr, o.tokenAttr),
			Reason: coordinator.RunnerSystemFailure,
			Cause:  fmt.Errorf("group %s: %w", group, errNoOrga),
		}
	}
	orga := clever.Orga{ID: id, Token: config.Secret(token)}
	o.mu.Lock()
	o.byGroup[group] = orgaEntry{orga: orga, fetched: now}
	o.known[id] = knownOrga{orga: orga, group: group}
	o.mu.Unlock()
	return orga, nil
}

// knownOrgas returns every organisation resolved so far, sorted by id.
func (o *orgaResolver) knownOrgas() []knownOrga {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]knownOrga, 0, len(o.known))
	for _, id := range slices.Sorted(maps.Keys(o.known)) {
		out = append(out, o.known[id])
	}
	return out
}

func joinQuoted(names []string) string {
	return strings.Join(names, " nor ")
}

// fixedOrga returns the organisation of single-tenant mode.
func (e *Executor) fixedOrga() clever.Orga {
	return clever.Orga{ID: e.runner.CCOrgaID, Token: e.runner.CCToken}
}

// orgaForJob returns the organisation a job's application goes to and the
// group it was read from ("" in single-tenant mode).
func (e *Executor) orgaForJob(ctx context.Context, job *coordinator.Job) (clever.Orga, string, error) {
	if !e.runner.CCMultiTenant {
		return e.fixedOrga(), "", nil
	}
	group := rootGroup(job)
	if group == "" {
		return clever.Orga{}, "", &executors.JobError{
			Public: "paas-runner cannot tell the top-level GitLab group of this job (no root namespace id " +
				"nor " + RootNamespaceVariable + " variable), so it cannot choose a Clever Cloud organisation",
			Reason: coordinator.RunnerSystemFailure,
		}
	}
	orga, err := e.orgas.resolve(ctx, group)
	return orga, group, err
}

// orgaForResource re-resolves the organisation of a resource (restored or
// not) from the current configuration.
func (e *Executor) orgaForResource(ctx context.Context, r *Resource) (clever.Orga, error) {
	var orga clever.Orga
	if !e.runner.CCMultiTenant {
		orga = e.fixedOrga()
	} else {
		if r.namespace == "" {
			return clever.Orga{}, fmt.Errorf("clever app %s has no GitLab group to resolve its organisation: %w", r.id, errNoOrga)
		}
		var err error
		if orga, err = e.orgas.resolve(ctx, r.namespace); err != nil {
			return clever.Orga{}, fmt.Errorf("clever app %s: %w", r.id, err)
		}
	}
	if r.orgaID != "" && r.orgaID != orga.ID {
		return clever.Orga{}, fmt.Errorf("clever app %s belongs to organisation %s but the configuration now gives %s: %w",
			r.id, r.orgaID, orga.ID, errNoOrga)
	}
	return orga, nil
}
