package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gitlab.com/paas-runner/paas-runner/config"
)

// DefaultFeatures returns the info.features paas-runner advertises: what its
// inner runners honour. two_phase_job_commit is true: an acquired job stays
// pending on the coordinator until AcceptJob (PUT state=running), so that a
// crash between the acquisition and the durable record of it leaves the job
// to be re-queued by the coordinator instead of lost; cancel_gracefully and cancelable are false because
// a job may be canceled while its host is still provisioning, with nobody
// to run after_script; session/terminal are not reachable through a PaaS.
func DefaultFeatures() map[string]bool {
	return map[string]bool{
		"variables": true, "image": true, "services": true, "artifacts": true, "cache": true,
		"fallback_cache_keys": true, "shared": false, "upload_multiple_artifacts": true,
		"upload_raw_artifacts": true, "session": false, "terminal": false, "refspecs": true,
		"masking": true, "proxy": false, "raw_variables": true, "artifacts_exclude": true,
		"multi_build_steps": true, "trace_reset": true, "trace_checksum": true, "trace_size": true,
		"vault_secrets": false, "cancelable": false, "return_exit_code": true, "service_variables": true,
		"service_multiple_aliases": true, "image_executor_opts": true, "service_executor_opts": true,
		"cancel_gracefully": false, "native_steps_integration": false, "two_phase_job_commit": true,
		"job_inputs": false,
	}
}

// ClientInfo is the info object sent with job requests and verification.
type ClientInfo struct {
	Name         string          `json:"name"`
	Version      string          `json:"version"`
	Revision     string          `json:"revision"`
	Platform     string          `json:"platform"`
	Architecture string          `json:"architecture"`
	Executor     string          `json:"executor"`
	Features     map[string]bool `json:"features"`
	Config       map[string]any  `json:"config"`
}

// Info returns the info object the client advertises.
func (c *Client) Info() ClientInfo {
	f := DefaultFeatures()
	maps.Copy(f, c.opts.Features)
	return ClientInfo{
		Name: "paas-runner", Version: c.opts.Version, Revision: c.opts.Revision,
		Platform: runtime.GOOS, Architecture: runtime.GOARCH, Executor: c.opts.Executor,
		Features: f, Config: map[string]any{"gpus": ""},
	}
}

type jobRequest struct {
	Token      string     `json:"token"`
	SystemID   string     `json:"system_id,omitempty"`
	LastUpdate string     `json:"last_update,omitempty"`
	Info       ClientInfo `json:"info"`
}

// RequestJob asks for a job. It returns (nil, nil) when there is none
// (204, 409), a *HTTPError with StatusCode 403 for a rejected runner token,
// and retries 429/5xx honouring Retry-After. A 201 whose body is not a valid
// job payload yields an error wrapping ErrMalformedJob. The last
// X-GitLab-Last-Update seen is sent back as last_update.
func (c *Client) RequestJob(ctx context.Context) (*Job, error) {
	c.mu.Lock()
	last := c.lastUpdate
	c.mu.Unlock()
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodPost, Path: "/jobs/request", Endpoint: "/jobs/request",
		JSON: jobRequest{Token: c.token.Reveal(), SystemID: c.opts.SystemID, LastUpdate: last, Info: c.Info()},
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusConflict {
			return nil, nil
		}
		return nil, fmt.Errorf("request job: %w", err)
	}
	if v := resp.Header.Get("X-GitLab-Last-Update"); v != "" {
		c.mu.Lock()
		c.lastUpdate = v
		c.mu.Unlock()
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		job, err := ParseJob(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("request job: %w: %w", ErrMalformedJob, err)
		}
		return job, nil
	case http.StatusNoContent:
		return nil, nil
	default:
		return nil, fmt.Errorf("request job: unexpected answer HTTP %d", resp.StatusCode)
	}
}

// JobStatus reads GET /api/v4/job with the job token (JOB-TOKEN header);
// 401 means finished. Statuses success, failed and canceled are finished.
func (c *Client) JobStatus(ctx context.Context, jobToken config.Secret) (JobState, error) {
	resp, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: "/job", Endpoint: "/job", JobToken: jobToken})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return JobState{Finished: true}, nil
		}
		return JobState{}, fmt.Errorf("read job status: %w", err)
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return JobState{}, fmt.Errorf("read job status: decode answer: %w", err)
	}
	return JobState{Status: body.Status, Finished: finalStatus(body.Status)}, nil
}

func finalStatus(s string) bool {
	switch s {
	case "success", "failed", "canceled":
		return true
	}
	return false
}

// activeStatus reports whether a Job-Status lets the runner keep updating.
func activeStatus(s string) bool { return s == "running" || s == "canceling" }

// AppendTrace writes data at offset of the job's log (PATCH /jobs/:id/trace,
// JOB-TOKEN header, Content-Range "offset-(offset+len-1)" in bytes) and
// returns the new stored size read back from the Range header. On 416 it
// resyncs to the stored size the coordinator reports and retries once
// there (the data is appended after what is stored); a second 416 returns a
// *TraceRangeError. A 403 whose Job-Status is not running/canceling returns
// an error wrapping ErrJobNotRunning. Empty data sends nothing.
func (c *Client) AppendTrace(ctx context.Context, jobID int64, jobToken config.Secret, offset int64, data []byte) (int64, error) {
	if len(data) == 0 {
		return offset, nil
	}
	for attempt := 0; ; attempt++ {
		n, err := c.patchTrace(ctx, jobID, jobToken, offset, data)
		if err == nil {
			return n, nil
		}
		var tre *TraceRangeError
		if errors.As(err, &tre) && attempt == 0 {
			offset = tre.Stored
			continue
		}
		return 0, fmt.Errorf("append to trace of job %d: %w", jobID, err)
	}
}

func (c *Client) patchTrace(ctx context.Context, jobID int64, jobToken config.Secret, offset int64, data []byte) (int64, error) {
	end := offset + int64(len(data)) - 1
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodPatch, Path: fmt.Sprintf("/jobs/%d/trace", jobID), Endpoint: "/jobs/:id/trace",
		Header: http.Header{"Content-Range": {fmt.Sprintf("%d-%d", offset, end)}},
		Body:   data, ContentType: "text/plain", JobToken: jobToken,
	})
	if err != nil {
		if resp == nil {
			return 0, err
		}
		switch resp.StatusCode {
		case http.StatusRequestedRangeNotSatisfiable:
			stored, ok := ParseRange(resp.Header.Get("Range"))
			if !ok {
				return 0, err
			}
			return 0, &TraceRangeError{Sent: offset, Stored: stored}
		case http.StatusForbidden:
			if s := resp.Header.Get("Job-Status"); !activeStatus(s) {
				return 0, errors.Join(ErrJobNotRunning, err)
			}
		}
		return 0, err
	}
	if n, ok := ParseRange(resp.Header.Get("Range")); ok {
		return n, nil
	}
	return end + 1, nil
}

// ParseRange parses a trace Range header "0-N" and returns N, the number of
// bytes the coordinator stores.
func ParseRange(h string) (int64, bool) {
	h = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(h), "bytes"))
	_, after, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(h, "=")), "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(after), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// failureReasons is GitLab's closed list (Enums::Ci::CommitStatus).
var failureReasons = func() map[string]bool {
	m := map[string]bool{}
	for r := range strings.FieldsSeq(`unknown_failure script_failure api_failure stuck_or_timeout_failure
		runner_system_failure missing_dependency_failure runner_unsupported stale_schedule
		job_execution_timeout archived_failure unmet_prerequisites scheduler_failure
		data_integrity_failure forward_deployment_failure user_blocked project_deleted
		ci_quota_exceeded pipeline_loop_detected no_matching_runner trace_size_exceeded
		builds_disabled environment_creation_failure deployment_rejected
		failed_outdated_deployment_job job_execution_server_timeout
		stuck_pending_with_matching_runners stuck_pending_no_matching_runners no_updates_running
		no_updates_canceling server_timeout_running server_timeout_canceling
		runner_configuration_error runner_external_dependency_failure runner_interrupted
		protected_environment_failure insufficient_bridge_permissions
		downstream_bridge_project_not_found invalid_bridge_trigger upstream_bridge_project_not_found
		insufficient_upstream_permissions bridge_pipeline_is_child_pipeline
		downstream_pipeline_creation_failed secrets_provider_not_found
		reached_max_descendant_pipelines_depth ip_restriction_failure
		reached_max_pipeline_hierarchy_size reached_downstream_pipeline_trigger_rate_limit
		duo_workflow_not_allowed job_router_failure job_token_expired id_token_burned_project_path
		downstream_project_trigger_resolved_to_empty`) {
		m[r] = true
	}
	return m
}()

// ValidFailureReason reports whether r is in GitLab's closed list of job
// failure reasons.
func ValidFailureReason(r string) bool { return failureReasons[r] }

type jobUpdate struct {
	Token         string `json:"token"`
	State         string `json:"state"`
	FailureReason string `json:"failure_reason,omitempty"`
	ExitCode      int    `json:"exit_code,omitempty"`
}

// AcceptJob is the second phase of two-phase job commit: it tells the
// coordinator that the runner takes the job it was assigned (PUT /jobs/:id
// with state=running and the job token), which moves it from pending to
// running. Transient failures are retried like every call. A 403 (the job
// is over, canceled or its token unknown, Job-Status says which), a 404 or a
// 409 (another runner manager holds it, or it was re-queued) returns an
// error wrapping ErrJobNotAccepted: the job is not ours, drop it. A 200 is
// accepted whatever its Job-Status (running, or canceling: the status
// checks stop it).
func (c *Client) AcceptJob(ctx context.Context, jobID int64, jobToken config.Secret) error {
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodPut, Path: fmt.Sprintf("/jobs/%d", jobID), Endpoint: "/jobs/:id",
		JSON:     jobUpdate{Token: jobToken.Reveal(), State: "running"},
		JobToken: jobToken,
	})
	if err != nil {
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusForbidden, http.StatusNotFound, http.StatusConflict:
				return fmt.Errorf("accept job %d: %w (job status %q): %w", jobID, ErrJobNotAccepted, resp.Header.Get("Job-Status"), err)
			}
		}
		return fmt.Errorf("accept job %d: %w", jobID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("accept job %d: unexpected answer HTTP %d", jobID, resp.StatusCode)
	}
	return nil
}

// maxAcceptedRepeats bounds how many 202 answers FailJob re-sends after.
const maxAcceptedRepeats = 10

// FailJob reports the job failed (PUT /jobs/:id). A 403 whose Job-Status is
// not running/canceling means the job is already over and returns nil. A
// reason outside the closed list is rejected before any request
// (ErrInvalidFailureReason). A 202 (trace still being persisted) is
// answered by sending the same update again after the
// X-GitLab-Trace-Update-Interval, at most 10 times.
func (c *Client) FailJob(ctx context.Context, jobID int64, jobToken config.Secret, reason FailureReason, exitCode int) error {
	if !ValidFailureReason(string(reason)) {
		return fmt.Errorf("fail job %d: %w: %q", jobID, ErrInvalidFailureReason, reason)
	}
	req := &Request{
		Method: http.MethodPut, Path: fmt.Sprintf("/jobs/%d", jobID), Endpoint: "/jobs/:id",
		JSON:     jobUpdate{Token: jobToken.Reveal(), State: "failed", FailureReason: string(reason), ExitCode: exitCode},
		JobToken: jobToken,
	}
	for i := 0; ; i++ {
		resp, err := c.Do(ctx, req)
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusForbidden && !activeStatus(resp.Header.Get("Job-Status")) {
				c.log.WithField("job_id", jobID).WithField("job_status", resp.Header.Get("Job-Status")).
					Info("job already over, failure not reported")
				return nil
			}
			return fmt.Errorf("fail job %d: %w", jobID, err)
		}
		if resp.StatusCode != http.StatusAccepted {
			return nil
		}
		if i >= maxAcceptedRepeats {
			return fmt.Errorf("fail job %d: coordinator still answers 202 after %d updates", jobID, i+1)
		}
		if err := sleepCtx(ctx, updateInterval(resp.Header)); err != nil {
			return fmt.Errorf("fail job %d: %w", jobID, err)
		}
	}
}

// updateInterval reads X-GitLab-Trace-Update-Interval (seconds, capped at
// one minute).
func updateInterval(h http.Header) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("X-GitLab-Trace-Update-Interval")))
	if err != nil || s < 0 {
		return time.Second
	}
	return min(time.Duration(s)*time.Second, time.Minute)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
