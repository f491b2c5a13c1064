package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"gitlab.com/paas-runner/paas-runner/config"
)

// ReadTrace reads a job's log with a private token
// (GET /projects/:id/jobs/:job_id/trace, PRIVATE-TOKEN header), for
// real-start detection. A job without log yet may answer 404, returned as a
// *HTTPError (StatusCode(err) == 404).
func (c *Client) ReadTrace(ctx context.Context, privateToken config.Secret, projectID, jobID int64) ([]byte, error) {
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodGet, Path: fmt.Sprintf("/projects/%d/jobs/%d/trace", projectID, jobID),
		Endpoint: "/projects/:id/jobs/:job_id/trace", PrivateToken: privateToken,
		Header: http.Header{"Accept": {"text/plain"}},
	})
	if err != nil {
		return nil, fmt.Errorf("read trace of job %d: %w", jobID, err)
	}
	return resp.Body, nil
}

// ProjectJob reads a job's status with a private token
// (GET /projects/:id/jobs/:job_id). Finished is true for success, failed,
// canceled and skipped.
func (c *Client) ProjectJob(ctx context.Context, privateToken config.Secret, projectID, jobID int64) (JobState, error) {
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodGet, Path: fmt.Sprintf("/projects/%d/jobs/%d", projectID, jobID),
		Endpoint: "/projects/:id/jobs/:job_id", PrivateToken: privateToken,
	})
	if err != nil {
		return JobState{}, fmt.Errorf("read job %d: %w", jobID, err)
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return JobState{}, fmt.Errorf("read job %d: decode answer: %w", jobID, err)
	}
	return JobState{Status: body.Status, Finished: finalStatus(body.Status) || body.Status == "skipped"}, nil
}

// noLimiter disables client-go's rate limiter (which would otherwise probe
// the server once to configure itself).
type noLimiter struct{}

func (noLimiter) Wait(ctx context.Context) error { return ctx.Err() }

// restClient returns a client-go client sharing this client's HTTP client
// (timeout, observer), retry policy and logger, authenticated with token.
func (c *Client) restClient(token config.Secret) (*gitlab.Client, error) {
	gl, err := gitlab.NewClient(token.Reveal(),
		gitlab.WithBaseURL(c.base+"/api/v4"),
		gitlab.WithHTTPClient(c.hc),
		gitlab.WithCustomLimiter(noLimiter{}),
		gitlab.WithCustomRetryMax(c.opts.RetryMax),
		gitlab.WithCustomRetryWaitMinMax(c.opts.RetryWaitMin, c.opts.RetryWaitMax),
		gitlab.WithCustomRetry(c.checkRetry),
		gitlab.WithCustomBackoff(c.backoff),
		gitlab.WithCustomLeveledLogger(leveledLogger{c.log}),
		gitlab.WithUserAgent(c.UserAgent()),
	)
	if err != nil {
		return nil, fmt.Errorf("create gitlab client: %w", err)
	}
	return gl, nil
}

// restError turns a client-go failure into an *HTTPError when an HTTP
// answer was received, scrubbing secrets.
func (c *Client) restError(resp *gitlab.Response, err error, secrets ...config.Secret) error {
	if err == nil {
		return nil
	}
	var er *gitlab.ErrorResponse
	switch {
	case errors.As(err, &er) && er.Response != nil:
		he := c.httpError(er.Response, er.Body, secrets)
		return he
	case resp != nil && resp.Response != nil && resp.StatusCode >= 400:
		return c.httpError(resp.Response, nil, secrets)
	}
	return err
}

// GroupCustomAttributes returns the custom attributes of a group given by id
// or full path, read with a private token through client-go
// (GET /groups/:id/custom_attributes; a path is URL-encoded).
func (c *Client) GroupCustomAttributes(ctx context.Context, privateToken config.Secret, group string) (map[string]string, error) {
	gl, err := c.restClient(privateToken)
	if err != nil {
		return nil, fmt.Errorf("read custom attributes of group %q: %w", group, err)
	}
	ctx = context.WithValue(ctx, endpointKey{}, "/groups/:id/custom_attributes")
	var attrs []*gitlab.CustomAttribute
	var resp *gitlab.Response
	if id, perr := strconv.ParseInt(group, 10, 64); perr == nil {
		attrs, resp, err = gl.CustomAttribute.ListCustomGroupAttributes(id, gitlab.WithContext(ctx))
	} else {
		// client-go only takes numeric ids here; build the same call for a
		// full path with client-go's own request machinery.
		req, rerr := gl.NewRequest(http.MethodGet, "groups/"+gitlab.PathEscape(group)+"/custom_attributes", nil,
			[]gitlab.RequestOptionFunc{gitlab.WithContext(ctx)})
		if rerr != nil {
			return nil, fmt.Errorf("read custom attributes of group %q: %w", group, rerr)
		}
		resp, err = gl.Do(req, &attrs)
	}
	if err != nil {
		return nil, fmt.Errorf("read custom attributes of group %q: %w", group, c.restError(resp, err, privateToken))
	}
	out := make(map[string]string, len(attrs))
	for _, a := range attrs {
		if a != nil {
			out[a.Key] = a.Value
		}
	}
	return out, nil
}
