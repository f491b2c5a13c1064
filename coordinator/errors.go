package coordinator

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gitlab.com/paas-runner/paas-runner/config"
)

// maxErrorBody is how many bytes of a response body an HTTPError keeps.
const maxErrorBody = 512

// ErrJobNotRunning means the coordinator refused a job-token call (403)
// because the job is over: its Job-Status is neither running nor canceling.
var ErrJobNotRunning = errors.New("job is not running any more")

// ErrJobNotAccepted means the coordinator refused the two-phase accept of
// a job (AcceptJob): 403 (over, canceled, token unknown), 404 or 409
// (another runner manager holds it, or it went back to the queue). The job
// is not this runner's; it must be dropped without any report.
var ErrJobNotAccepted = errors.New("job not accepted by the coordinator")

// ErrAttemptTimeout means one attempt of a request exceeded
// Options.Timeout while the caller's context was still live; it is
// transient.
var ErrAttemptTimeout = errors.New("coordinator request attempt timed out")

// ErrMalformedJob means the coordinator assigned a job (201) whose payload
// could not be decoded.
var ErrMalformedJob = errors.New("malformed job payload")

// ErrInvalidFailureReason means a failure reason outside GitLab's closed
// list was passed to FailJob.
var ErrInvalidFailureReason = errors.New("invalid failure reason")

// HTTPError is a coordinator answer with a status of 400 or more (or an
// unexpected success status). It never holds a token: URL has no query and
// Body is truncated and scrubbed of the secrets of the request.
type HTTPError struct {
	// Method is the HTTP method.
	Method string
	// URL is the request URL without query string or credentials.
	URL string
	// StatusCode is the HTTP status of the last attempt.
	StatusCode int
	// Body is the start of the response body (at most 512 bytes).
	Body string
	// Header holds the response headers (Job-Status, Range, Retry-After…).
	Header http.Header
	// RetryAfter is the wait the server asked for (Retry-After or
	// RateLimit-ResetTime), 0 when it gave none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		msg += " " + t
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// JobStatus returns the Job-Status header of the answer ("" when absent).
func (e *HTTPError) JobStatus() string {
	if e.Header == nil {
		return ""
	}
	return e.Header.Get("Job-Status")
}

// TraceRangeError means a trace append was refused with 416 twice: the
// coordinator stores Stored bytes, which does not match the offset sent.
type TraceRangeError struct {
	// Sent is the offset the last append was sent at.
	Sent int64
	// Stored is the size of the trace stored by the coordinator.
	Stored int64
}

// Error implements error.
func (e *TraceRangeError) Error() string {
	return fmt.Sprintf("trace range mismatch: sent at offset %d, coordinator stores %d bytes", e.Sent, e.Stored)
}

// StatusCode returns the HTTP status carried by err (an *HTTPError anywhere
// in its chain), or 0.
func StatusCode(err error) int {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.StatusCode
	}
	return 0
}

// Retryable is the one classifier of coordinator failures: it reports
// whether retrying the same call later may succeed. HTTP 408, 429 and 5xx
// (except 501 Not Implemented)
// and network errors are retryable; context cancellation/deadline, TLS
// certificate errors, other 4xx, malformed payloads and nil are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrAttemptTimeout) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The per-attempt timeout (http.Client.Timeout) is transient; a
		// deadline of the caller's context is the caller giving up.
		return strings.Contains(err.Error(), "Client.Timeout exceeded")
	}
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return retryableStatus(he.StatusCode)
	}
	if _, ok := errors.AsType[*TraceRangeError](err); ok {
		return false
	}
	if errors.Is(err, ErrMalformedJob) || errors.Is(err, ErrJobNotRunning) || errors.Is(err, ErrJobNotAccepted) || errors.Is(err, ErrInvalidFailureReason) {
		return false
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		var uae x509.UnknownAuthorityError
		var hne x509.HostnameError
		var cie x509.CertificateInvalidError
		if errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) {
			return false
		}
		if strings.Contains(ue.Error(), "unsupported protocol scheme") {
			return false
		}
		return true
	}
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne)
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
		(code >= 500 && code != http.StatusNotImplemented && code <= 599)
}

// retryAfter returns the wait asked for by resp: RateLimit-ResetTime (an
// HTTP date) first, then Retry-After (seconds or an HTTP date). ok is false
// when there is none.
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	if v := resp.Header.Get("RateLimit-ResetTime"); v != "" {
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// scrub removes every secret value from s.
func scrub(s string, secrets []config.Secret) string {
	for _, sec := range secrets {
		if v := sec.Reveal(); len(v) >= 4 {
			s = strings.ReplaceAll(s, v, config.Masked)
		}
	}
	return s
}

// safeURL returns u without query, fragment or user info, for errors and
// logs.
func safeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.User = nil
	return c.String()
}

// redactURLString returns s with the query and credentials of any URL
// removed; used on strings retryablehttp logs.
func redactURLString(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		if before, _, ok := strings.Cut(s, "?"); ok {
			return before
		}
		return s
	}
	return safeURL(u)
}
