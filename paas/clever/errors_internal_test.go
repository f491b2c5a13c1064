package clever

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	withRetryAfter := func(v string) *http.Response {
		return &http.Response{Header: http.Header{"Retry-After": {v}}}
	}
	//nolint:bodyclose // synthetic responses without body, never sent.
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		want    time.Duration
	}{
		{"first", 0, nil, time.Second},
		{"doubles", 2, nil, 4 * time.Second},
		{"capped", 10, nil, 30 * time.Second},
		{"retry-after seconds", 0, withRetryAfter("7"), 7 * time.Second},
		{"retry-after capped", 0, withRetryAfter("3600"), time.Minute},
		{"retry-after garbage ignored", 1, withRetryAfter("soon"), 2 * time.Second},
		{"no header", 1, &http.Response{Header: http.Header{}}, 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, backoff(time.Second, 30*time.Second, time.Minute, tc.attempt, tc.resp))
		})
	}
}

func TestParseRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, ok := parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now)
	require.True(t, ok)
	require.Equal(t, 90*time.Second, d)
}

func TestRetryable(t *testing.T) {
	tests := map[int]bool{400: false, 401: false, 404: false, 408: true, 429: true, 500: true, 501: false, 502: true, 503: true}
	for status, want := range tests {
		require.Equal(t, want, Retryable(&APIError{Status: status}), "status %d", status)
	}
	require.False(t, Retryable(nil))
}
