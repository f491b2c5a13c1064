package clever

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gitlab.com/paas-runner/paas-runner/executors"
)

// restoredDefaultWeight is the weight of a restored resource whose dump has
// none (Heptapod state files older than the weight system): pessimistic.
const restoredDefaultWeight = 32768

// Resource is one Clever application. It is an immutable value.
type Resource struct {
	id        string
	name      string
	namespace string
	orgaID    string
	deployURL string
	weight    float64
	launched  bool
}

var _ executors.Resource = (*Resource)(nil)

// ID returns the application id (app_…).
func (r *Resource) ID() string { return r.id }

// Name returns the application name.
func (r *Resource) Name() string { return r.name }

// Weight returns the weight of the application's flavor.
func (r *Resource) Weight() float64 { return r.weight }

// Launched reports whether the build context was pushed.
func (r *Resource) Launched() bool { return r.launched }

// OrgaID returns the organisation of the application ("" when restored
// from a Heptapod dump).
func (r *Resource) OrgaID() string { return r.orgaID }

// Namespace returns the GitLab top-level group the organisation was read
// from in multi-tenant mode ("" otherwise).
func (r *Resource) Namespace() string { return r.namespace }

// DeployURL returns the HTTPS git URL of the deployment repository.
func (r *Resource) DeployURL() string { return r.deployURL }

// String implements fmt.Stringer (the Heptapod log form).
func (r *Resource) String() string {
	return fmt.Sprintf("CleverCloudApplication(app_id='%s', weight=%g, launched=%t)", r.id, r.weight, r.launched)
}

// dump is the state-file form of a Resource: the Heptapod keys (reference
// §4.2) plus name and orga_id. It never holds a Clever token.
type dump struct {
	ID              string   `json:"id"`
	GitlabNamespace *string  `json:"gitlab_namespace"`
	Weight          *float64 `json:"weight,omitempty"`
	Launched        bool     `json:"launched"`
	DeployURL       string   `json:"deploy_url"`
	Name            string   `json:"name,omitempty"`
	OrgaID          string   `json:"orga_id,omitempty"`
}

func (e *Executor) asResource(res executors.Resource) (*Resource, error) {
	r, ok := res.(*Resource)
	if !ok || r == nil {
		return nil, fmt.Errorf("clever executor: resource %T is not a Clever application", res)
	}
	return r, nil
}

// Dump serialises a resource for the state file.
func (e *Executor) Dump(res executors.Resource) (json.RawMessage, error) {
	r, err := e.asResource(res)
	if err != nil {
		return nil, err
	}
	d := dump{ID: r.id, Launched: r.launched, DeployURL: r.deployURL, Name: r.name, OrgaID: r.orgaID}
	w := r.weight
	d.Weight = &w
	if r.namespace != "" {
		ns := r.namespace
		d.GitlabNamespace = &ns
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("dump clever app %s: %w", r.id, err)
	}
	return raw, nil
}

// Restore rebuilds a resource from Dump output or from a Heptapod
// clever-docker dump. Credentials are not in the dump: every later call
// resolves them again from the configuration (or the group's attributes),
// so Restore itself makes no remote call.
func (e *Executor) Restore(_ context.Context, raw json.RawMessage) (executors.Resource, error) {
	var d dump
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("restore clever app: %w", err)
	}
	if d.ID == "" {
		return nil, errors.New("restore clever app: dump has no id")
	}
	r := &Resource{id: d.ID, name: d.Name, launched: d.Launched, deployURL: d.DeployURL, orgaID: d.OrgaID, weight: restoredDefaultWeight}
	if d.Weight != nil {
		r.weight = *d.Weight
	}
	if d.GitlabNamespace != nil {
		r.namespace = *d.GitlabNamespace
	}
	if r.orgaID == "" && !e.runner.CCMultiTenant {
		r.orgaID = e.runner.CCOrgaID
	}
	return r, nil
}
