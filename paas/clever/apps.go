package clever

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// Deployment repository states (deployment.repoState).
const (
	RepoCreating = "CREATING"
	RepoCreated  = "CREATED"
)

// LifetimeTask is the lifetime of a task application: run the container's
// command, then stop.
const LifetimeTask = "TASK"

// CreateAppRequest is the body of POST /organisations/:orga/applications,
// with exactly the field set of the Heptapod runner (reference §6.3).
type CreateAppRequest struct {
	Name             string `json:"name"`
	Zone             string `json:"zone"`
	Deploy           string `json:"deploy"`
	InstanceType     string `json:"instanceType"`
	InstanceVersion  string `json:"instanceVersion"`
	InstanceVariant  string `json:"instanceVariant"`
	InstanceLifetime string `json:"instanceLifetime,omitempty"`
	MinInstances     int    `json:"minInstances"`
	MaxInstances     int    `json:"maxInstances"`
	MinFlavor        string `json:"minFlavor"`
	MaxFlavor        string `json:"maxFlavor"`
}

// AppDeployment is the deployment object of an application.
type AppDeployment struct {
	Type      string `json:"type"`
	RepoState string `json:"repoState"`
	URL       string `json:"url"`
	// HTTPURL is the HTTPS git URL to push to.
	HTTPURL string `json:"httpUrl"`
}

// AppInstance is the instance object of an application.
type AppInstance struct {
	Type         string `json:"type"`
	Version      string `json:"version"`
	MinInstances int    `json:"minInstances"`
	MaxInstances int    `json:"maxInstances"`
	MinFlavor    Flavor `json:"minFlavor"`
	MaxFlavor    Flavor `json:"maxFlavor"`
	Lifetime     string `json:"lifetime"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// App is a Clever application (only the fields used).
type App struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Zone       string        `json:"zone"`
	OwnerID    string        `json:"ownerId"`
	State      string        `json:"state"`
	CommitID   string        `json:"commitId"`
	DeployURL  string        `json:"deployUrl"`
	Deployment AppDeployment `json:"deployment"`
	Instance   AppInstance   `json:"instance"`
	Env        []EnvVar      `json:"env"`
}

// Env is an ordered set of environment variables, sent as a flat JSON
// object. A later entry overrides an earlier one of the same name (keeping
// the earlier position).
type Env []EnvVar

// MarshalJSON implements json.Marshaler.
func (e Env) MarshalJSON() ([]byte, error) {
	order := []string{}
	vals := map[string]string{}
	for _, v := range e {
		if _, ok := vals[v.Name]; !ok {
			order = append(order, v.Name)
		}
		vals[v.Name] = v.Value
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("encode env name: %w", err)
		}
		vb, err := json.Marshal(vals[k])
		if err != nil {
			return nil, fmt.Errorf("encode env value: %w", err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func appsPath(orga *Orga) string {
	return "/organisations/" + url.PathEscape(orga.ID) + "/applications"
}

func appPath(orga *Orga, appID string) string {
	return appsPath(orga) + "/" + url.PathEscape(appID)
}

const (
	epApps = "/organisations/:orga/applications"
	epApp  = "/organisations/:orga/applications/:app"
	epEnv  = "/organisations/:orga/applications/:app/env"
)

// CreateApp creates an application. It is not blindly retried: after a
// transient failure (5xx, network) it waits, looks for an application of
// the same name (the request may have succeeded) and only creates again when
// there is none. A permanent failure (4xx) is returned at once.
func (c *Client) CreateApp(ctx context.Context, orga Orga, req CreateAppRequest) (*App, error) {
	var lastErr error
	for attempt := 0; attempt <= c.opts.RetryMax; attempt++ {
		if attempt > 0 {
			if !sleep(ctx, backoff(c.opts.RetryWaitMin, c.opts.RetryWaitMax, c.opts.MaxRetryAfter, attempt-1, nil)) {
				return nil, fmt.Errorf("create clever app %s: %w (after %w)", req.Name, ctx.Err(), lastErr)
			}
			app, err := c.FindApp(ctx, orga, req.Name)
			if err != nil {
				lastErr = err
				if !Retryable(err) {
					break
				}
				continue
			}
			if app != nil {
				c.log.WithField("resource_id", app.ID).Info("clever app found after an ambiguous create failure")
				return app, nil
			}
		}
		var app App
		err := c.do(ctx, call{method: "POST", endpoint: epApps, path: appsPath(&orga), orga: &orga, body: req, noRetry: true}, &app)
		if err == nil {
			return &app, nil
		}
		lastErr = err
		if !Retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("create clever app %s: %w", req.Name, lastErr)
}

// SetEnv replaces the environment of an application (PUT …/env).
func (c *Client) SetEnv(ctx context.Context, orga Orga, appID string, env Env) error {
	if env == nil {
		env = Env{}
	}
	err := c.do(ctx, call{method: "PUT", endpoint: epEnv, path: appPath(&orga, appID) + "/env", orga: &orga, body: env}, nil)
	if err != nil {
		return fmt.Errorf("set env of clever app %s: %w", appID, err)
	}
	return nil
}

// GetApp reads an application; a missing one is an error for which
// IsNotFound is true.
func (c *Client) GetApp(ctx context.Context, orga Orga, appID string) (*App, error) {
	var app App
	if err := c.do(ctx, call{method: "GET", endpoint: epApp, path: appPath(&orga, appID), orga: &orga}, &app); err != nil {
		return nil, fmt.Errorf("get clever app %s: %w", appID, err)
	}
	return &app, nil
}

// ListApps lists the applications of an organisation.
func (c *Client) ListApps(ctx context.Context, orga Orga) ([]App, error) {
	var apps []App
	if err := c.do(ctx, call{method: "GET", endpoint: epApps, path: appsPath(&orga), orga: &orga}, &apps); err != nil {
		return nil, fmt.Errorf("list clever apps of %s: %w", orga.ID, err)
	}
	return apps, nil
}

// FindApp returns the application named name, or (nil, nil) when none.
func (c *Client) FindApp(ctx context.Context, orga Orga, name string) (*App, error) {
	apps, err := c.ListApps(ctx, orga)
	if err != nil {
		return nil, err
	}
	for i := range apps {
		if apps[i].Name == name {
			return &apps[i], nil
		}
	}
	return nil, nil
}

// DeleteApp deletes an application; one already gone (404, id 4004) is a
// success.
func (c *Client) DeleteApp(ctx context.Context, orga Orga, appID string) error {
	err := c.do(ctx, call{method: "DELETE", endpoint: epApp, path: appPath(&orga, appID), orga: &orga}, nil)
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete clever app %s: %w", appID, err)
	}
	if err != nil {
		c.log.WithField("resource_id", appID).Info("clever app already gone")
	}
	return nil
}
