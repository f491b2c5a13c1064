package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
)

// Defaults of Options.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultRetryMax     = 4
	DefaultRetryWaitMin = 500 * time.Millisecond
	DefaultRetryWaitMax = 60 * time.Second
	// DefaultExecutor is the inner executor advertised in info.executor.
	DefaultExecutor = "docker"
	// maxBody caps how much of a response body is read (job logs included).
	maxBody = 64 << 20
)

// API is the Observer api label of this package's requests.
const API = "coordinator"

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
// endpoint is a bounded template such as "/jobs/:id/trace". It is called
// once per attempt; status is 0 when no HTTP answer was received.
type Observer func(api, endpoint string, status int, d time.Duration)

// Options tune a Client. The zero value is usable.
type Options struct {
	// Logger receives debug lines for each request (never a token).
	Logger logrus.FieldLogger
	// Timeout bounds each attempt; default 30s.
	Timeout time.Duration
	// RetryMax is the number of retries of transient failures; 0 means
	// the default (4), a negative value disables retries.
	RetryMax int
	// Observer, when set, is called for every attempt.
	Observer Observer

	// RetryWaitMin and RetryWaitMax bound the exponential back-off between
	// retries (defaults 500ms and 60s). A Retry-After longer than
	// RetryWaitMax is not waited for: the *HTTPError is returned with its
	// RetryAfter set, for the caller to back off.
	RetryWaitMin, RetryWaitMax time.Duration
	// SystemID is sent as system_id (job requests, verify); see
	// LoadSystemID.
	SystemID string
	// Version and Revision are advertised in info and User-Agent.
	Version, Revision string
	// Executor is advertised as info.executor (default "docker", the
	// inner runner's executor).
	Executor string
	// Features overrides entries of DefaultFeatures in info.features.
	Features map[string]bool
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// Now replaces time.Now (Retry-After dates).
	Now func() time.Time
}

// Client talks to one coordinator as one runner. It is safe for concurrent use.
type Client struct {
	base  string
	token config.Secret
	opts  Options
	log   logrus.FieldLogger
	http  *retryablehttp.Client
	hc    *http.Client

	mu         sync.Mutex
	lastUpdate string // guarded by mu: last X-GitLab-Last-Update seen
}

// New returns a client for the coordinator at baseURL (without /api/v4)
// authenticated with the runner token.
func New(baseURL string, token config.Secret, opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.RetryMax == 0:
		opts.RetryMax = DefaultRetryMax
	case opts.RetryMax < 0:
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = DefaultRetryWaitMin
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = DefaultRetryWaitMax
	}
	if opts.Executor == "" {
		opts.Executor = DefaultExecutor
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	lg := opts.Logger
	if lg == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		lg = l
	}
	base := strings.TrimRight(baseURL, "/")
	base = strings.TrimSuffix(base, "/api/v4")
	c := &Client{base: base, token: token, opts: opts, log: lg}
	tr := opts.Transport
	if tr == nil {
		tr = cleanhttp.DefaultPooledTransport()
	}
	c.hc = &http.Client{Timeout: opts.Timeout, Transport: &observingTransport{next: tr, obs: opts.Observer}}
	c.http = &retryablehttp.Client{
		HTTPClient:   c.hc,
		Logger:       leveledLogger{lg},
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		RetryMax:     opts.RetryMax,
		CheckRetry:   c.checkRetry,
		Backoff:      c.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return c
}

// BaseURL returns the coordinator's base URL (without /api/v4).
func (c *Client) BaseURL() string { return c.base }

// UserAgent returns the User-Agent header the client sends.
func (c *Client) UserAgent() string {
	return fmt.Sprintf("paas-runner %s (%s; %s; %s/%s)", c.opts.Version, c.opts.Revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Request is one call made through Client.Do.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is the path below /api/v4, e.g. "/jobs/42/trace".
	Path string
	// Endpoint is the bounded template reported to the Observer and in
	// logs, e.g. "/jobs/:id/trace". Defaults to Path.
	Endpoint string
	// Query is added to the URL. Never put a secret in it.
	Query url.Values
	// Header holds extra headers.
	Header http.Header
	// JSON, when not nil, is marshalled as the body (Content-Type
	// application/json). Put secrets in it as plain strings (Reveal).
	JSON any
	// Body is a raw body, used when JSON is nil.
	Body []byte
	// ContentType of Body (default text/plain).
	ContentType string
	// JobToken, when set, is sent as the JOB-TOKEN header.
	JobToken config.Secret
	// PrivateToken, when set, is sent as the PRIVATE-TOKEN header.
	PrivateToken config.Secret
	// Secrets lists further values to scrub from error bodies (e.g. a token
	// sent in JSON). The runner, job and private tokens are always scrubbed.
	Secrets []config.Secret
}

// Response is a coordinator answer read in full.
type Response struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Header holds the response headers.
	Header http.Header
	// Body is the response body (at most 64 MiB).
	Body []byte
}

type endpointKey struct{}

// Do sends req with the client's timeout, retry policy, observer, logging
// and error typing. It is the low-level call other coordinator helpers (and
// zz_*.go extensions) are built on. Transient failures (Retryable) are
// retried up to RetryMax times, honouring Retry-After. When an HTTP answer
// was received, Do returns it (non-nil Response) — and, when its status is
// 400 or more, also a *HTTPError; otherwise the error is a transport or
// context error wrapped with the method and endpoint.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	endpoint := req.Endpoint
	if endpoint == "" {
		endpoint = req.Path
	}
	u := c.base + "/api/v4" + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	var body any
	ctype := ""
	switch {
	case req.JSON != nil:
		b, err := json.Marshal(req.JSON)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s body: %w", req.Method, endpoint, err)
		}
		body, ctype = b, "application/json"
	case req.Body != nil:
		body, ctype = req.Body, req.ContentType
		if ctype == "" {
			ctype = "text/plain"
		}
	}
	actx := context.WithValue(ctx, endpointKey{}, endpoint)
	rr, err := retryablehttp.NewRequestWithContext(actx, req.Method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s request: %w", req.Method, endpoint, err)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			rr.Header.Add(k, v)
		}
	}
	rr.Header.Set("User-Agent", c.UserAgent())
	if rr.Header.Get("Accept") == "" {
		rr.Header.Set("Accept", "application/json")
	}
	if ctype != "" {
		rr.Header.Set("Content-Type", ctype)
	}
	if !req.JobToken.IsZero() {
		rr.Header.Set("JOB-TOKEN", req.JobToken.Reveal())
	}
	if !req.PrivateToken.IsZero() {
		rr.Header.Set("PRIVATE-TOKEN", req.PrivateToken.Reveal())
	}
	start := c.opts.Now()
	resp, err := c.http.Do(rr)
	fields := logrus.Fields{"method": req.Method, "endpoint": endpoint}
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
		}
		c.log.WithFields(fields).WithField("duration", time.Since(start).String()).Debug("coordinator request failed")
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("%s %s: %w: %w", req.Method, endpoint, ErrAttemptTimeout, err)
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, endpoint, err)
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	fields["status"] = resp.StatusCode
	fields["duration"] = time.Since(start).String()
	c.log.WithFields(fields).Debug("coordinator request")
	out := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}
	if rerr != nil {
		return out, fmt.Errorf("read %s %s answer: %w", req.Method, endpoint, rerr)
	}
	if resp.StatusCode >= 400 {
		secrets := append([]config.Secret{c.token, req.JobToken, req.PrivateToken}, req.Secrets...)
		return out, c.httpError(resp, data, secrets)
	}
	return out, nil
}

// httpError builds the typed error of an answer.
func (c *Client) httpError(resp *http.Response, body []byte, secrets []config.Secret) *HTTPError {
	// Scrub before truncating: a secret cut by the truncation would no
	// longer match and its start would be kept.
	b := scrub(strings.TrimSpace(string(body)), secrets)
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody] + "…"
	}
	he := &HTTPError{
		Method:     resp.Request.Method,
		URL:        safeURL(resp.Request.URL),
		StatusCode: resp.StatusCode,
		Body:       b,
		Header:     resp.Header.Clone(),
	}
	if d, ok := retryAfter(resp, c.opts.Now()); ok {
		he.RetryAfter = d
	}
	return he
}

// checkRetry is the retryablehttp.CheckRetry of the client: Retryable
// decides, except that a Retry-After beyond RetryWaitMax is left to the
// caller.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		// The caller's context is live, so a deadline is the per-attempt
		// timeout: transient.
		return errors.Is(err, context.DeadlineExceeded) || Retryable(err), nil
	}
	if !retryableStatus(resp.StatusCode) {
		return false, nil
	}
	if d, ok := retryAfter(resp, c.opts.Now()); ok && d > c.opts.RetryWaitMax {
		return false, nil
	}
	return true, nil
}

// backoff is the retryablehttp.Backoff of the client: the server's
// Retry-After / RateLimit-ResetTime when given, else exponential back-off
// with jitter between RetryWaitMin and RetryWaitMax.
func (c *Client) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if d, ok := retryAfter(resp, c.opts.Now()); ok {
		return d
	}
	d := lo << min(attempt, 30)
	if d <= 0 || d > hi {
		d = hi
	}
	// Up to 25 % jitter below d, never below lo.
	if j := int64(d / 4); j > 0 {
		d -= time.Duration(rand.Int64N(j))
	}
	return max(d, lo)
}

// observingTransport reports every attempt to the Observer.
type observingTransport struct {
	next http.RoundTripper
	obs  Observer
}

func (t *observingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.obs == nil {
		return t.next.RoundTrip(r)
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	ep, _ := r.Context().Value(endpointKey{}).(string)
	if ep == "" {
		ep = "other"
	}
	t.obs(API, ep, status, time.Since(start))
	return resp, err
}

// leveledLogger adapts a logrus.FieldLogger to retryablehttp at debug
// level, removing query strings (where tokens could hide) from URLs.
type leveledLogger struct{ l logrus.FieldLogger }

func (l leveledLogger) log(msg string, kv []any) {
	f := logrus.Fields{}
	for i := 0; i+1 < len(kv); i += 2 {
		k := fmt.Sprint(kv[i])
		switch v := kv[i+1].(type) {
		case string:
			f[k] = redactURLString(v)
		case *url.URL:
			f[k] = safeURL(v)
		case error:
			f[k] = redactURLString(v.Error())
		case fmt.Stringer:
			f[k] = redactURLString(v.String())
		default:
			f[k] = v
		}
	}
	l.l.WithFields(f).Debug("retryablehttp: " + msg)
}

func (l leveledLogger) Error(msg string, kv ...any) { l.log(msg, kv) }
func (l leveledLogger) Info(msg string, kv ...any)  { l.log(msg, kv) }
func (l leveledLogger) Debug(msg string, kv ...any) { l.log(msg, kv) }
func (l leveledLogger) Warn(msg string, kv ...any)  { l.log(msg, kv) }
