package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"gitlab.com/paas-runner/paas-runner/config"
)

// IsCreatedRunnerToken reports whether token is a runner authentication
// token of the "created runner" flow (glrt-…), to be verified with
// POST /runners/verify rather than registered with POST /runners.
func IsCreatedRunnerToken(token string) bool { return strings.HasPrefix(token, "glrt-") }

// RegisterOptions are the runner properties sent with a legacy registration
// (POST /runners). In the glrt- flow they live on the server.
type RegisterOptions struct {
	Description     string
	TagList         []string
	RunUntagged     bool
	Locked          bool
	Paused          bool
	AccessLevel     string
	MaximumTimeout  int64
	MaintenanceNote string
}

// RegisteredRunner is the answer to a registration or verification.
type RegisteredRunner struct {
	// ID is the runner id on the coordinator (0 from very old servers'
	// verification).
	ID int64
	// Token is the runner authentication token.
	Token config.Secret
	// TokenExpiresAt is when Token expires; zero when it does not.
	TokenExpiresAt time.Time
}

// Register registers a new runner with the legacy registration-token flow
// (POST /runners, through client-go). The client's token is the
// registration token. 403 (invalid token) and 410 (registration tokens
// disabled on the server) come back as *HTTPError.
func (c *Client) Register(ctx context.Context, o RegisterOptions) (RegisteredRunner, error) {
	gl, err := c.restClient("")
	if err != nil {
		return RegisteredRunner{}, fmt.Errorf("register runner: %w", err)
	}
	ctx = context.WithValue(ctx, endpointKey{}, "/runners")
	info := c.Info()
	opt := &gitlab.RegisterNewRunnerOptions{
		Token:       new(c.token.Reveal()),
		Description: new(o.Description),
		Info: &gitlab.RegisterNewRunnerInfoOptions{
			Name: new(info.Name), Version: new(info.Version), Revision: new(info.Revision),
			Platform: new(info.Platform), Architecture: new(info.Architecture),
		},
		Paused:      new(o.Paused),
		Locked:      new(o.Locked),
		RunUntagged: new(o.RunUntagged),
	}
	if len(o.TagList) > 0 {
		opt.TagList = &o.TagList
	}
	if o.AccessLevel != "" {
		opt.AccessLevel = new(o.AccessLevel)
	}
	if o.MaximumTimeout > 0 {
		opt.MaximumTimeout = new(o.MaximumTimeout)
	}
	if o.MaintenanceNote != "" {
		opt.MaintenanceNote = new(o.MaintenanceNote)
	}
	r, resp, err := gl.Runners.RegisterNewRunner(opt, gitlab.WithContext(ctx))
	if err != nil {
		return RegisteredRunner{}, fmt.Errorf("register runner: %w", c.restError(resp, err, c.token))
	}
	if r == nil || r.Token == "" {
		return RegisteredRunner{}, fmt.Errorf("register runner: answer holds no token")
	}
	out := RegisteredRunner{ID: r.ID, Token: config.Secret(r.Token)}
	if r.TokenExpiresAt != nil {
		out.TokenExpiresAt = *r.TokenExpiresAt
	}
	return out, nil
}

type verifyRequest struct {
	Token    string     `json:"token"`
	SystemID string     `json:"system_id,omitempty"`
	Info     ClientInfo `json:"info"`
}

type verifyAnswer struct {
	ID             int64      `json:"id"`
	Token          string     `json:"token"`
	TokenExpiresAt *time.Time `json:"token_expires_at"`
}

// Verify checks the client's runner token (POST /runners/verify with
// system_id and info), which also records this machine as a runner manager
// for glrt- tokens. 403 (unknown or revoked token) comes back as
// *HTTPError. A plain-text "200" answer (old servers) yields ID 0.
func (c *Client) Verify(ctx context.Context) (RegisteredRunner, error) {
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodPost, Path: "/runners/verify", Endpoint: "/runners/verify",
		JSON: verifyRequest{Token: c.token.Reveal(), SystemID: c.opts.SystemID, Info: c.Info()},
	})
	if err != nil {
		return RegisteredRunner{}, fmt.Errorf("verify runner: %w", err)
	}
	out := RegisteredRunner{Token: c.token}
	var a verifyAnswer
	if json.Unmarshal(resp.Body, &a) == nil {
		out.ID = a.ID
		if a.Token != "" {
			out.Token = config.Secret(a.Token)
		}
		if a.TokenExpiresAt != nil {
			out.TokenExpiresAt = *a.TokenExpiresAt
		}
	}
	return out, nil
}

type deleteRequest struct {
	Token    string `json:"token"`
	SystemID string `json:"system_id,omitempty"`
}

// DeleteRunner deletes the whole runner (DELETE /runners, token in the JSON
// body rather than client-go's query string, so it never lands in a URL).
// Used for legacy tokens.
func (c *Client) DeleteRunner(ctx context.Context) error {
	_, err := c.Do(ctx, &Request{
		Method: http.MethodDelete, Path: "/runners", Endpoint: "/runners",
		JSON: deleteRequest{Token: c.token.Reveal()},
	})
	if err != nil {
		return fmt.Errorf("delete runner: %w", err)
	}
	return nil
}

// DeleteManager deletes this machine's runner manager (DELETE
// /runners/managers with the token and system_id); the runner itself stays
// on the server. Used for glrt- tokens. client-go lacks this call.
func (c *Client) DeleteManager(ctx context.Context) error {
	if c.opts.SystemID == "" {
		return fmt.Errorf("delete runner manager: no system_id")
	}
	_, err := c.Do(ctx, &Request{
		Method: http.MethodDelete, Path: "/runners/managers", Endpoint: "/runners/managers",
		JSON: deleteRequest{Token: c.token.Reveal(), SystemID: c.opts.SystemID},
	})
	if err != nil {
		return fmt.Errorf("delete runner manager: %w", err)
	}
	return nil
}
