package clever

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Clever error ids the client and the executor care about.
const (
	// ErrIDAppNotFound is the id of "no such application" (HTTP 404).
	ErrIDAppNotFound = 4004
	// ErrIDInstanceNotFound is the id of "The specified instance does not
	// exist" (HTTP 400): the instance type or version is stale.
	ErrIDInstanceNotFound = 9017
)

// maxErrorBody bounds how much of an error body an APIError keeps.
const maxErrorBody = 512

// APIError is a failed Clever Cloud API call. Path is the request path below
// the API base, without query string; it never holds a credential.
type APIError struct {
	Method string
	Path   string
	// Status is the HTTP status code.
	Status int
	// ID is the Clever error id (4004, 9017, …), 0 when the body had none.
	ID int
	// Message is the Clever error message, or the (truncated) raw body when
	// it was not a Clever error document.
	Message string
	// RetryAfter is the server's Retry-After delay, when it sent one.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "clever api %s %s: status %d", e.Method, e.Path, e.Status)
	if e.ID != 0 {
		fmt.Fprintf(&b, " (id %d)", e.ID)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// IsNotFound reports whether err says the application (or resource) does
// not exist: HTTP 404 or Clever error id 4004.
func IsNotFound(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status == http.StatusNotFound || ae.ID == ErrIDAppNotFound
}

// IsInstanceNotFound reports whether err is Clever's 9017 "instance does not
// exist" (stale instance type or version).
func IsInstanceNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.ID == ErrIDInstanceNotFound
}

// Retryable reports whether err is transient: HTTP 408, 429 and 5xx, and
// network errors. Context cancellation and other 4xx are permanent.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		return retryableStatus(ae.Status)
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		return true
	}
	return false
}

func retryableStatus(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return true
	case status >= 500 && status != http.StatusNotImplemented:
		return true
	}
	return false
}

// errorDoc is a Clever error body. Newer endpoints use code/error instead of
// id/message.
type errorDoc struct {
	ID      json.Number `json:"id"`
	Code    json.Number `json:"code"`
	Message string      `json:"message"`
	Error   string      `json:"error"`
	Type    string      `json:"type"`
}

// newAPIError builds the typed error of a failed response body.
func newAPIError(method, path string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	var doc errorDoc
	if err := json.Unmarshal(body, &doc); err == nil {
		id := doc.ID
		if id == "" {
			id = doc.Code
		}
		if n, err := id.Int64(); err == nil {
			e.ID = int(n)
		}
		e.Message = doc.Message
		if e.Message == "" {
			e.Message = doc.Error
		}
		if e.ID != 0 || e.Message != "" {
			return e
		}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > maxErrorBody {
		msg = msg[:maxErrorBody] + "…"
	}
	e.Message = msg
	return e
}

// parseRetryAfter reads a Retry-After header (seconds or HTTP date).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := max(t.Sub(now), 0)
		return d, true
	}
	return 0, false
}

// backoff returns the wait before retry number attempt (0-based): the
// server's Retry-After when given (capped at maxRetryAfter), else min·2^n
// capped at max.
func backoff(minWait, maxWait, maxRetryAfter time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			if d > maxRetryAfter {
				d = maxRetryAfter
			}
			return d
		}
	}
	d := minWait
	for i := 0; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	if d > maxWait {
		d = maxWait
	}
	return d
}
