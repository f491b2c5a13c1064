package coordinator

// Job-side calls of the built-in job agent (paas-runner exec-job), built on
// Client.Do: the state update (keep-alive and final, with 202 handling) and
// trace appends that also return the job's status, so that the agent can
// detect cancellation. The agent owns its retry policy (it keeps its trace
// bytes and resends them); build its client with RetryMax < 0 for one
// attempt per call.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gitlab.com/paas-runner/paas-runner/config"
)

// ErrJobNotProcessing is returned (wrapped, with the *HTTPError) when the
// coordinator answers 403 to a job-token call: the job is no longer running
// on this runner (canceled, failed, erased, token expired). The agent must
// stop the job.
var ErrJobNotProcessing = errors.New("job is not processing on runner")

// ErrTraceRange is returned (wrapped) on 416: the offset did not match the
// stored trace size; TraceReply.Stored holds the size to resend from.
var ErrTraceRange = errors.New("trace offset does not match the stored size")

// TraceReply is what PATCH /jobs/:id/trace answered.
type TraceReply struct {
	// Stored is the number of bytes the coordinator holds (Range: 0-N),
	// or -1 when unknown.
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
// and an error wrapping ErrJobNotProcessing; otherwise the error of Do
// (*HTTPError, transport error; see Retryable).
func (c *Client) PatchJobTrace(ctx context.Context, jobID int64, jobToken config.Secret, offset int64, data []byte) (TraceReply, error) {
	end := max(offset+int64(len(data))-1, offset)
	resp, err := c.Do(ctx, &Request{
		Method:      http.MethodPatch,
		Path:        fmt.Sprintf("/jobs/%d/trace", jobID),
		Endpoint:    "/jobs/:id/trace",
		Header:      http.Header{"Content-Range": {fmt.Sprintf("%d-%d", offset, end)}},
		Body:        append([]byte{}, data...),
		ContentType: "text/plain",
		JobToken:    jobToken,
	})
	if resp == nil {
		return TraceReply{Stored: -1}, err
	}
	reply := TraceReply{Stored: -1, JobStatus: resp.Header.Get("Job-Status"), UpdateInterval: agentSeconds(resp.Header.Get("X-GitLab-Trace-Update-Interval"))}
	if n, ok := ParseRange(resp.Header.Get("Range")); ok {
		reply.Stored = n
	}
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return reply, fmt.Errorf("patch trace of job %d at %d: %w: %w", jobID, offset, ErrTraceRange, err)
	case resp.StatusCode == http.StatusForbidden:
		return reply, fmt.Errorf("patch trace of job %d (status %q): %w: %w", jobID, reply.JobStatus, ErrJobNotProcessing, err)
	case err != nil:
		return reply, err
	}
	if reply.Stored < 0 {
		reply.Stored = offset + int64(len(data))
	}
	return reply, nil
}

// UpdateJob sends the job's state with the job token (PUT /api/v4/jobs/:id):
// state is running (keep-alive), success or failed; reason and exitCode are
// sent only when non-empty/non-zero; checksum ("crc32:%08x") and bytesize
// describe the whole trace (omitted when checksum is empty). It returns the
// Job-Status header. When the coordinator answers 202 (still persisting the
// trace) retryAfter is the positive delay after which the same PUT must be
// sent again; it is 0 once the update is applied (200). A 403 returns the
// status and an error wrapping ErrJobNotProcessing; other failures the error
// of Do.
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
	resp, err := c.Do(ctx, &Request{
		Method:   http.MethodPut,
		Path:     fmt.Sprintf("/jobs/%d", jobID),
		Endpoint: "/jobs/:id",
		JSON:     body,
		JobToken: jobToken,
	})
	if resp == nil {
		return "", 0, err
	}
	status := resp.Header.Get("Job-Status")
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return status, 0, fmt.Errorf("update job %d to %s (status %q): %w: %w", jobID, state, status, ErrJobNotProcessing, err)
	case err != nil:
		return status, 0, err
	case resp.StatusCode == http.StatusAccepted:
		d := agentSeconds(resp.Header.Get("X-GitLab-Trace-Update-Interval"))
		if d <= 0 {
			d = time.Second
		}
		return status, d, nil
	}
	return status, 0, nil
}

// agentSeconds reads an integer or float number of seconds (0 when
// invalid).
func agentSeconds(h string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(h), 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
