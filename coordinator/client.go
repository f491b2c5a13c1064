package coordinator

// SKELETON: signatures are the contract other packages code against; the
// coordinator helper replaces the bodies (and may add, never remove/rename).

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
)

var errNotImplemented = errors.New("not implemented")

// FailureReason is a GitLab job failure_reason from the closed list.
type FailureReason string

// Failure reasons paas-runner sends.
const (
	ScriptFailure       FailureReason = "script_failure"
	RunnerSystemFailure FailureReason = "runner_system_failure"
	JobExecutionTimeout FailureReason = "job_execution_timeout"
	RunnerUnsupported   FailureReason = "runner_unsupported"
	UnknownFailure      FailureReason = "unknown_failure"
	StuckOrTimeout      FailureReason = "stuck_or_timeout_failure"
	APIFailure          FailureReason = "api_failure"
	RunnerConfigError   FailureReason = "runner_configuration_error"
)

// JobState is what the coordinator says of a job.
type JobState struct {
	// Status is the GitLab job status (pending, running, canceling,
	// canceled, success, failed), or "" when unknown.
	Status string
	// Finished is true when the job no longer runs (final status, or the job
	// token was rejected with 401).
	Finished bool
}

// Observer is notified of every HTTP request a client makes, for metrics.
// endpoint is a bounded template such as "/jobs/:id/trace".
type Observer func(api, endpoint string, status int, d time.Duration)

// Options tune a Client. The zero value is usable.
type Options struct {
	Logger   logrus.FieldLogger
	Timeout  time.Duration // per attempt; default 30s
	RetryMax int           // retries of transient failures; default 4
	Observer Observer
}

// Client talks to one coordinator as one runner. It is safe for concurrent use.
type Client struct {
	base  string
	token config.Secret
	opts  Options
}

// New returns a client for the coordinator at baseURL (without /api/v4)
// authenticated with the runner token.
func New(baseURL string, token config.Secret, opts Options) *Client {
	return &Client{base: baseURL, token: token, opts: opts}
}

// RequestJob asks for a job. It returns (nil, nil) when there is none
// (204, 409), a *HTTPError with StatusCode 403 for a rejected runner token,
// and retries 429/5xx honouring Retry-After.
func (c *Client) RequestJob(ctx context.Context) (*Job, error) { return nil, errNotImplemented }

// JobStatus reads GET /api/v4/job with the job token; 401 means finished.
func (c *Client) JobStatus(ctx context.Context, jobToken config.Secret) (JobState, error) {
	return JobState{}, errNotImplemented
}

// AppendTrace writes data at offset of the job's log (PATCH /jobs/:id/trace)
// and returns the new stored size read back from the Range header. On 416 it
// resyncs to the stored size and retries once.
func (c *Client) AppendTrace(ctx context.Context, jobID int64, jobToken config.Secret, offset int64, data []byte) (int64, error) {
	return 0, errNotImplemented
}

// FailJob reports the job failed (PUT /jobs/:id). A 403 whose Job-Status is
// not running/canceling means the job is already over and returns nil.
func (c *Client) FailJob(ctx context.Context, jobID int64, jobToken config.Secret, reason FailureReason, exitCode int) error {
	return errNotImplemented
}

// ReadTrace reads a job's log with a private token
// (GET /projects/:id/jobs/:job_id/trace), for real-start detection.
func (c *Client) ReadTrace(ctx context.Context, privateToken config.Secret, projectID, jobID int64) ([]byte, error) {
	return nil, errNotImplemented
}

// GroupCustomAttributes returns the custom attributes of a group given by id
// or full path, read with a private token through client-go.
func (c *Client) GroupCustomAttributes(ctx context.Context, privateToken config.Secret, group string) (map[string]string, error) {
	return nil, errNotImplemented
}
