package coordinator

// Job-side calls of the built-in job agent (paas-runner exec-job): the final
// state update and trace appends that also report the job's status, so the
// agent can detect cancellation. Each call is ONE attempt; the agent owns
// the retry policy (it must keep its trace bytes and resend them).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gitlab.com/paas-runner/paas-runner/config"
)

// ErrJobNotProcessing is returned (wrapped) when the coordinator answers 403
// to a job-token call: the job is no longer running on this runner
// (canceled, failed, erased, token expired). The agent must stop the job.
var ErrJobNotProcessing = errors.New("job is not processing on runner")

// ErrTraceRange is returned (wrapped) on 416: the offset did not match the
// stored trace size; TraceReply.Stored holds the size to resend from.
var ErrTraceRange = errors.New("trace offset does not match the stored size")

// JobAPIError is a job-token call that failed with an unexpected HTTP status.
// It never holds the token or a URL with credentials.
type JobAPIError struct {
	Method     string
	Endpoint   string // template such as "/jobs/:id/trace"
	StatusCode int
	RetryAfter time.Duration
	Body       string // truncated
}

// Error implements error.
func (e *JobAPIError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Endpoint, e.StatusCode, e.Body)
}

// Transient reports whether repeating the call may succeed (408, 429, 5xx).
func (e *JobAPIError) Transient() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// TraceReply is what PATCH /jobs/:id/trace answered.
type TraceReply struct {
	// Stored is the number of bytes the coordinator holds (Range: 0-N),
	// or -1 when the reply had no Range header.
	Stored int64
	// JobStatus is the Job-Status header (running, canceling, canceled…).
	JobStatus string
	// UpdateInterval is X-GitLab-Trace-Update-Interval (0 when absent).
	UpdateInterval time.Duration
}

// PatchJobTrace appends data at offset of the job's log with the job token
// (PATCH /api/v4/jobs/:id/trace). On 202 it returns the stored size and the
// job status. On 416 it returns the reply (Stored = size to resend from) and
// an error wrapping ErrTraceRange; on 403 the reply (JobStatus when given)
// and an error wrapping ErrJobNotProcessing; otherwise a *JobAPIError or a
// network error.
func (c *Client) PatchJobTrace(ctx context.Context, jobID int64, jobToken config.Secret, offset int64, data []byte) (TraceReply, error) {
	url := c.agentURL("/jobs/%d/trace", jobID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, url, bytes.NewReader(data))
	if err != nil {
		return TraceReply{Stored: -1}, fmt.Errorf("build trace request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("JOB-TOKEN", jobToken.Reveal())
	end := offset + int64(len(data)) - 1
	if end < offset {
		end = offset
	}
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", offset, end))
	resp, body, err := c.agentDo(req, "/jobs/:id/trace")
	if err != nil {
		return TraceReply{Stored: -1}, err
	}
	reply := TraceReply{
		Stored:         agentParseRangeEnd(resp.Header.Get("Range")),
		JobStatus:      resp.Header.Get("Job-Status"),
		UpdateInterval: agentParseSeconds(resp.Header.Get("X-GitLab-Trace-Update-Interval")),
	}
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
		if reply.Stored < 0 {
			reply.Stored = offset + int64(len(data))
		}
		return reply, nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return reply, fmt.Errorf("patch trace of job %d at %d: %w", jobID, offset, ErrTraceRange)
	case resp.StatusCode == http.StatusForbidden:
		return reply, fmt.Errorf("patch trace of job %d (status %q): %w", jobID, reply.JobStatus, ErrJobNotProcessing)
	default:
		return reply, agentHTTPError(resp, body, "/jobs/:id/trace")
	}
}

// UpdateJob sends the job's state with the job token (PUT /api/v4/jobs/:id):
// state is running (keep-alive), success or failed; reason and exitCode are
// sent only when non-empty/non-zero; checksum ("crc32:%08x") and bytesize
// describe the whole trace. It returns the Job-Status header. When the
// coordinator answers 202 (still persisting the trace) retryAfter is the
// positive delay after which the same PUT must be sent again; it is 0 once the
// update is applied (200). A 403 returns the status and an error wrapping
// ErrJobNotProcessing; other failures a *JobAPIError or a network error.
func (c *Client) UpdateJob(ctx context.Context, jobID int64, jobToken config.Secret, state string, reason FailureReason, exitCode int, checksum string, bytesize int64) (jobStatus string, retryAfter time.Duration, err error) {
	body := map[string]any{"token": jobToken.Reveal(), "state": state}
	if reason != "" {
		body["failure_reason"] = string(reason)
	}
	if exitCode != 0 {
		body["exit_code"] = exitCode
	}
	if checksum != "" {
		body["checksum"] = checksum
		body["output"] = map[string]any{"checksum": checksum, "bytesize": bytesize}
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return "", 0, fmt.Errorf("encode job update: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.agentURL("/jobs/%d", jobID), bytes.NewReader(buf))
	if err != nil {
		return "", 0, fmt.Errorf("build job update request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("JOB-TOKEN", jobToken.Reveal())
	resp, rbody, err := c.agentDo(req, "/jobs/:id")
	if err != nil {
		return "", 0, err
	}
	status := resp.Header.Get("Job-Status")
	switch resp.StatusCode {
	case http.StatusOK:
		return status, 0, nil
	case http.StatusAccepted:
		d := agentParseSeconds(resp.Header.Get("X-GitLab-Trace-Update-Interval"))
		if d <= 0 {
			d = time.Second
		}
		return status, d, nil
	case http.StatusForbidden:
		return status, 0, fmt.Errorf("update job %d to %s (status %q): %w", jobID, state, status, ErrJobNotProcessing)
	default:
		return status, 0, agentHTTPError(resp, rbody, "/jobs/:id")
	}
}

func (c *Client) agentURL(format string, jobID int64) string {
	return strings.TrimRight(c.base, "/") + "/api/v4" + fmt.Sprintf(format, jobID)
}

// agentDo makes one attempt and reads (a bounded part of) the body. Errors
// name the endpoint template, never the URL.
func (c *Client) agentDo(req *http.Request, endpoint string) (*http.Response, []byte, error) {
	timeout := c.opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: timeout, Transport: c.opts.Transport}).Do(req)
	if err != nil {
		if c.opts.Observer != nil {
			c.opts.Observer("jobs", endpoint, 0, time.Since(start))
		}
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) && uerr.Unwrap() != nil {
			err = uerr.Unwrap() // drop the URL that *url.Error prints
		}
		return nil, nil, fmt.Errorf("%s %s: %w", req.Method, endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if c.opts.Observer != nil {
		c.opts.Observer("jobs", endpoint, resp.StatusCode, time.Since(start))
	}
	return resp, body, nil
}

func agentHTTPError(resp *http.Response, body []byte, endpoint string) error {
	b := string(body)
	if len(b) > 200 {
		b = b[:200]
	}
	e := &JobAPIError{Method: resp.Request.Method, Endpoint: endpoint, StatusCode: resp.StatusCode, Body: b}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		e.RetryAfter = agentParseSeconds(ra)
	}
	return e
}

// agentParseRangeEnd reads "0-N" and returns N, or -1.
func agentParseRangeEnd(h string) int64 {
	_, end, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(h), "bytes "), "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(end), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// agentParseSeconds reads an integer or float number of seconds (0 when invalid).
func agentParseSeconds(h string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(h), 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
