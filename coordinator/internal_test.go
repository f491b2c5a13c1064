package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		ok     bool
	}{
		{"none", http.Header{}, 0, false},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{"zero", http.Header{"Retry-After": {"0"}}, 0, true},
		{"http date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second, true},
		{"past date", http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0, true},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0, false},
		{"ratelimit reset wins", http.Header{"Retry-After": {"60"}, "Ratelimit-Resettime": {now.Add(5 * time.Second).Format(http.TimeFormat)}}, 5 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := retryAfter(&http.Response{Header: tc.header}, now)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, d)
		})
	}
}

func TestBackoff(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := New("http://x", "", Options{Now: func() time.Time { return now }, RetryWaitMin: 100 * time.Millisecond, RetryWaitMax: time.Second})
	tests := []struct {
		name     string
		attempt  int
		resp     *http.Response
		min, max time.Duration
	}{
		{"retry-after honoured", 0, &http.Response{Header: http.Header{"Retry-After": {"3"}}}, 3 * time.Second, 3 * time.Second},
		{"retry-after date", 0, &http.Response{Header: http.Header{"Retry-After": {now.Add(2 * time.Second).Format(http.TimeFormat)}}}, 2 * time.Second, 2 * time.Second},
		{"first", 0, nil, 100 * time.Millisecond, 100 * time.Millisecond},
		{"third", 2, nil, 300 * time.Millisecond, 400 * time.Millisecond},
		{"capped", 20, nil, 750 * time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := c.backoff(c.opts.RetryWaitMin, c.opts.RetryWaitMax, tc.attempt, tc.resp)
			require.GreaterOrEqual(t, d, tc.min)
			require.LessOrEqual(t, d, tc.max)
		})
	}
	// A Retry-After beyond RetryWaitMax is left to the caller.
	retry, err := c.checkRetry(t.Context(), &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"60"}}}, nil)
	require.NoError(t, err)
	require.False(t, retry)
	retry, err = c.checkRetry(t.Context(), &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"1"}}}, nil)
	require.NoError(t, err)
	require.True(t, retry)
}

func TestRetryable(t *testing.T) {
	netErr := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	clientTimeout := &url.Error{Op: "Post", URL: "http://x", Err: fmt.Errorf("%w (Client.Timeout exceeded while awaiting headers)", context.DeadlineExceeded)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"408", &HTTPError{StatusCode: 408}, true},
		{"429", fmt.Errorf("wrapped: %w", &HTTPError{StatusCode: 429}), true},
		{"500", &HTTPError{StatusCode: 500}, true},
		{"503", &HTTPError{StatusCode: 503}, true},
		{"501", &HTTPError{StatusCode: 501}, false},
		{"400", &HTTPError{StatusCode: 400}, false},
		{"403", &HTTPError{StatusCode: 403}, false},
		{"404", &HTTPError{StatusCode: 404}, false},
		{"416 resync failed", &TraceRangeError{Stored: 3}, false},
		{"network", netErr, true},
		{"attempt timeout", clientTimeout, true},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"caller deadline", &url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, false},
		{"malformed job", fmt.Errorf("request job: %w", ErrMalformedJob), false},
		{"job over", ErrJobNotRunning, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Retryable(tc.err))
		})
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0-12", 12, true}, {"0-0", 0, true}, {"bytes 0-5", 5, true}, {"", 0, false}, {"12", 0, false}, {"0-x", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			n, ok := ParseRange(tc.in)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, n)
		})
	}
}

func TestValidFailureReason(t *testing.T) {
	for _, r := range []FailureReason{
		ScriptFailure, RunnerSystemFailure, JobExecutionTimeout, RunnerUnsupported,
		UnknownFailure, StuckOrTimeout, APIFailure, RunnerConfigError,
	} {
		require.True(t, ValidFailureReason(string(r)), r)
	}
	require.False(t, ValidFailureReason("job failed to launch, more details in logs"))
	require.False(t, ValidFailureReason(""))
}

func TestRedactURLString(t *testing.T) {
	require.Equal(t, "http://h/api/v4/job", redactURLString("http://user:pw@h/api/v4/job?job_token=secret"))
	require.Equal(t, "Get ", redactURLString("Get ?token=secret"))
}

func TestSystemID(t *testing.T) {
	cfg := t.TempDir() + "/config.toml"
	id, exists, err := PeekSystemID(cfg)
	require.NoError(t, err)
	require.False(t, exists)
	require.Regexp(t, `^[sr]_[0-9a-zA-Z]{12}$`, id)
	_, err = os.Stat(SystemIDPath(cfg))
	require.ErrorIs(t, err, fs.ErrNotExist, "peek writes nothing")
	id1, err := LoadSystemID(cfg)
	require.NoError(t, err)
	id2, err := LoadSystemID(cfg)
	require.NoError(t, err)
	require.Equal(t, id1, id2, "persistent")
	st, err := os.Stat(SystemIDPath(cfg))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
