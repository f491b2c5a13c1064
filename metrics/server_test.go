package metrics

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/dispatcher"
)

// staticSource is a SnapshotSource returning a settable snapshot.
type staticSource struct {
	mu sync.Mutex
	s  dispatcher.Snapshot
}

func (s *staticSource) Snapshot() dispatcher.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}

func (s *staticSource) set(snap dispatcher.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s = snap
}

func newTestServer(t *testing.T, src SnapshotSource, readiness func() error, opts ...ServerOption) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, src.Snapshot)
	require.NoError(t, err)
	m.JobAcquired("alpha", "M")
	ts := httptest.NewServer(NewServer("127.0.0.1:0", reg, src, readiness, nil, opts...).Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestRoutes(t *testing.T) {
	src := &staticSource{s: sampleSnapshot()}
	ts := newTestServer(t, src, nil)
	cases := []struct {
		name, method, path string
		status             int
		contains           []string
	}{
		{name: "metrics", method: http.MethodGet, path: "/metrics", status: 200, contains: []string{
			`paas_runner_job_acquisitions_total{flavor="M",runner="alpha"} 1`, `paas_runner_weight_used 7.5`,
			`promhttp_metric_handler_requests_total`,
		}},
		{name: "metrics HEAD", method: http.MethodHead, path: "/metrics", status: 200},
		{name: "metrics POST refused", method: http.MethodPost, path: "/metrics", status: 405},
		{name: "healthz", method: http.MethodGet, path: "/healthz", status: 200, contains: []string{"ok"}},
		{name: "readyz", method: http.MethodGet, path: "/readyz", status: 200, contains: []string{"ready"}},
		{name: "jobs", method: http.MethodGet, path: "/api/v1/jobs", status: 200, contains: []string{`"job_id": 4`, `"phase": "kept"`}},
		{name: "job by label", method: http.MethodGet, path: "/api/v1/jobs/alpha/1", status: 200, contains: []string{`"job_id": 1`, `"resource_id": "app_1"`}},
		{name: "job by short id", method: http.MethodGet, path: "/api/v1/jobs/bbbbbbbbbbbb/3", status: 200, contains: []string{`"job_id": 3`}},
		{name: "job of another runner", method: http.MethodGet, path: "/api/v1/jobs/beta/1", status: 404, contains: []string{`no tracked job 1 for runner \"beta\"`}},
		{name: "unknown job", method: http.MethodGet, path: "/api/v1/jobs/alpha/99", status: 404},
		{name: "bad job id", method: http.MethodGet, path: "/api/v1/jobs/alpha/x", status: 400},
		{name: "debug list", method: http.MethodGet, path: "/debug/jobs/list", status: 200, contains: []string{
			"url=/api/v4/projects/7/jobs/1 state=running stage=running executor_stage=fake duration=1m30s\n",
			"url=/api/v4/projects/7/jobs/2 state=pending stage=pending executor_stage=fake duration=1m30s\n",
			"url=/api/v4/projects/8/jobs/4 state=finished stage=kept executor_stage=clever-docker duration=1m30s\n",
		}},
		{name: "unknown path", method: http.MethodGet, path: "/nope", status: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, tc.method, ts.URL+tc.path)
			require.Equal(t, tc.status, status, body)
			for _, c := range tc.contains {
				require.Contains(t, body, c)
			}
		})
	}
}

func TestJobsAPIDecodes(t *testing.T) {
	src := &staticSource{s: sampleSnapshot()}
	ts := newTestServer(t, src, nil)
	status, h, body := get(t, ts.URL+JobsPath)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "application/json", h.Get("Content-Type"))
	var l JobList
	require.NoError(t, json.Unmarshal([]byte(body), &l))
	require.Len(t, l.Jobs, 4)
	require.Equal(t, "alpha", l.Jobs[0].Runner)
	require.NotNil(t, l.Jobs[0].StartedAt)
	require.Nil(t, l.Jobs[1].StartedAt, "a zero time is absent, not year 1")
	require.NotContains(t, body, "0001-01-01")
}

func TestDebugJobsListHeaderAndURLs(t *testing.T) {
	src := &staticSource{s: sampleSnapshot()}
	ts := newTestServer(t, src, nil, WithCoordinatorURLs(map[string]string{
		"alpha": "https://user:hunter2@gitlab.example.com/",
		"beta":  "https://heptapod.example.net",
	}))
	status, h, body := get(t, ts.URL+"/debug/jobs/list")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "2", h.Get("X-List-Version"))
	require.True(t, strings.HasPrefix(h.Get("Content-Type"), "text/plain"))
	require.Contains(t, body, "url=https://gitlab.example.com/api/v4/projects/7/jobs/1 ")
	require.Contains(t, body, "url=https://heptapod.example.net/api/v4/projects/8/jobs/3 ")
	require.NotContains(t, body, "hunter2", "credentials in a coordinator URL are dropped")
	require.Len(t, strings.Split(strings.TrimSpace(body), "\n"), 4)
}

func TestReadyz(t *testing.T) {
	ready := sampleSnapshot()
	stopping := sampleSnapshot()
	stopping.Stopping = true
	noRunner := sampleSnapshot()
	noRunner.Runners[0].Removed = true
	closed := make(chan struct{})
	close(closed)
	cases := []struct {
		name      string
		snap      dispatcher.Snapshot
		readiness func() error
		status    int
		body      string
	}{
		{name: "ready", snap: ready, readiness: ReadyWhenClosed(closed), status: 200, body: "ready"},
		{name: "state not restored", snap: ready, readiness: ReadyWhenClosed(make(chan struct{})), status: 503, body: ErrNotReady.Error()},
		{name: "custom readiness", snap: ready, readiness: func() error { return errors.New("config not loaded") }, status: 503, body: "config not loaded"},
		{name: "shutting down", snap: stopping, status: 503, body: "shutting down"},
		{name: "no runner polled", snap: noRunner, status: 503, body: "no runner is being polled"},
		{name: "no snapshot yet", snap: dispatcher.Snapshot{}, status: 503, body: "no runner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, &staticSource{s: tc.snap}, tc.readiness)
			status, _, body := get(t, ts.URL+"/readyz")
			require.Equal(t, tc.status, status)
			require.Contains(t, body, tc.body)
		})
	}
}

func TestServerStartShutdown(t *testing.T) {
	src := &staticSource{}
	src.set(sampleSnapshot())
	reg := prometheus.NewRegistry()
	_, err := New(reg, src.Snapshot)
	require.NoError(t, err)
	srv := NewServer("127.0.0.1:0", reg, src, nil, nil)
	require.NoError(t, srv.Shutdown(t.Context()), "shutdown before start is a no-op")
	require.NoError(t, srv.Start())
	require.NotEqual(t, "127.0.0.1:0", srv.Addr())
	status, _, _ := get(t, "http://"+srv.Addr()+"/healthz")
	require.Equal(t, http.StatusOK, status)

	busy := NewServer(srv.Addr(), reg, src, nil, nil)
	require.Error(t, busy.Start(), "the address is taken")

	require.NoError(t, srv.Shutdown(t.Context()))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+srv.Addr()+"/healthz", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err, "server closed")
}

func TestRedaction(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"push to https://user:s3cr3t@push.example/app.git failed", "push to https://[MASKED]@push.example/app.git failed"},
		{`Get "http://tok@h/x": refused`, `Get "http://[MASKED]@h/x": refused`},
		{"no url here: a@b", "no url here: a@b"},
		{"https://host/path?x=1 ok", "https://host/path?x=1 ok"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			require.Equal(t, tc.want, redactText(tc.in))
		})
	}

	snap := sampleSnapshot()
	snap.Jobs[0].LastError = "git push https://x:clever-secret-token@push/app.git: denied"
	snap.Runners[0].LastError = "dial https://u:runner-secret@gitlab: refused"
	red := RedactSnapshot(snap)
	require.NotContains(t, red.Jobs[0].LastError, "clever-secret-token")
	require.NotContains(t, red.Runners[0].LastError, "runner-secret")
	require.Contains(t, snap.Jobs[0].LastError, "clever-secret-token", "the shared snapshot is not modified")

	ts := newTestServer(t, &staticSource{s: snap}, nil)
	for _, path := range []string{JobsPath, JobsPath + "/alpha/1"} {
		_, _, body := get(t, ts.URL+path)
		require.Contains(t, body, "[MASKED]@push")
		require.NotContains(t, body, "clever-secret-token")
	}
}
