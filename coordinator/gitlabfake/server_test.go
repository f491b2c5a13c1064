package gitlabfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

func start(t *testing.T, opts gitlabfake.Options) *gitlabfake.Server {
	t.Helper()
	s := gitlabfake.New(opts).Start()
	t.Cleanup(s.Close)
	return s
}

type call struct {
	method, path string
	header       map[string]string
	json         any
	raw          string
}

// reply is what the tests read of a response whose body do has read and
// closed.
type reply struct {
	StatusCode int
	Header     http.Header
}

func do(t *testing.T, s *gitlabfake.Server, c call) (reply, []byte) {
	t.Helper()
	var body io.Reader
	ctype := ""
	switch {
	case c.json != nil:
		b, err := json.Marshal(c.json)
		require.NoError(t, err)
		body, ctype = bytes.NewReader(b), "application/json"
	case c.raw != "":
		body, ctype = bytes.NewReader([]byte(c.raw)), "text/plain"
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, s.URL()+"/api/v4"+c.path, body)
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{StatusCode: resp.StatusCode, Header: resp.Header}, b
}

func TestRegistrationStatuses(t *testing.T) {
	s := start(t, gitlabfake.Options{})
	glrt := "glrt-t1_abcdefghijklmnop"
	s.AddRunner(glrt)
	disabled := start(t, gitlabfake.Options{LegacyRegistrationDisabled: true})

	tests := []struct {
		name   string
		srv    *gitlabfake.Server
		c      call
		status int
	}{
		{"register ok", s, call{method: "POST", path: "/runners", json: map[string]any{"token": gitlabfake.DefaultRegistrationToken, "description": "d"}}, 201},
		{"register bad token", s, call{method: "POST", path: "/runners", json: map[string]any{"token": "nope"}}, 403},
		{"register no token", s, call{method: "POST", path: "/runners", json: map[string]any{}}, 400},
		{"register disabled", disabled, call{method: "POST", path: "/runners", json: map[string]any{"token": gitlabfake.DefaultRegistrationToken}}, 410},
		{"verify ok", s, call{method: "POST", path: "/runners/verify", json: map[string]any{"token": glrt, "system_id": "s_000000000001"}}, 200},
		{"verify bad", s, call{method: "POST", path: "/runners/verify", json: map[string]any{"token": "glrt-unknown"}}, 403},
		{"manager missing params", s, call{method: "DELETE", path: "/runners/managers", json: map[string]any{"token": glrt}}, 400},
		{"manager bad token", s, call{method: "DELETE", path: "/runners/managers", json: map[string]any{"token": "x", "system_id": "s_1"}}, 403},
		{"manager unknown", s, call{method: "DELETE", path: "/runners/managers", json: map[string]any{"token": glrt, "system_id": "s_nope"}}, 404},
		{"manager ok", s, call{method: "DELETE", path: "/runners/managers", json: map[string]any{"token": glrt, "system_id": "s_000000000001"}}, 204},
		{"delete bad", s, call{method: "DELETE", path: "/runners", json: map[string]any{"token": "nope"}}, 403},
		{"reset ok", s, call{method: "POST", path: "/runners/reset_authentication_token", json: map[string]any{"token": glrt}}, 201},
		{"reset bad", s, call{method: "POST", path: "/runners/reset_authentication_token", json: map[string]any{"token": glrt}}, 403},
		{"unknown endpoint", s, call{method: "GET", path: "/nothing"}, 404},
		{"wrong method", s, call{method: "GET", path: "/runners/verify"}, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := do(t, tc.srv, tc.c)
			require.Equal(t, tc.status, resp.StatusCode)
		})
	}
	rs := s.Runners()
	require.Len(t, rs, 2)
	require.True(t, rs[1].Legacy)
	require.Equal(t, "d", rs[1].Description)
	require.True(t, rs[1].Locked, "locked defaults to true")
	resp, _ := do(t, s, call{method: "DELETE", path: "/runners", json: map[string]any{"token": rs[1].Token}})
	require.Equal(t, 204, resp.StatusCode)
	require.Len(t, s.Runners(), 1)
	require.Equal(t, 2, s.Requests("DELETE /runners"))
}

func TestJobRequestAndLifecycle(t *testing.T) {
	s := start(t, gitlabfake.Options{FinalUpdateAccepted: 2})
	tok := "glrt-runner-one"
	s.AddRunner(tok)
	req := func(last string) (reply, []byte) {
		return do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": tok, "last_update": last, "system_id": "s_x"}})
	}
	resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "bad"}})
	require.Equal(t, 403, resp.StatusCode)
	resp, _ = req("")
	require.Equal(t, 204, resp.StatusCode)
	v1 := resp.Header.Get("X-GitLab-Last-Update")
	require.Len(t, v1, 32)
	resp, _ = req(v1)
	require.Equal(t, 204, resp.StatusCode)
	require.Equal(t, v1, resp.Header.Get("X-GitLab-Last-Update"))

	queued := s.Enqueue(gitlabfake.JobSpec{Variables: map[string]string{"CI_CLEVER_CLOUD_FLAVOR": "XS"}, Services: []gitlabfake.Service{{Name: "postgres:16", Alias: "db"}}})
	resp, body := req(v1)
	require.Equal(t, 201, resp.StatusCode)
	job, err := coordinator.ParseJob(body)
	require.NoError(t, err)
	require.Equal(t, queued.ID, job.ID)
	require.Equal(t, queued.Token, job.Token.Reveal())
	flavor, ok := job.Variable("CI_CLEVER_CLOUD_FLAVOR")
	require.True(t, ok)
	require.Equal(t, "XS", flavor)
	ns, _ := job.Variable("CI_PROJECT_ROOT_NAMESPACE")
	require.Equal(t, "acme", ns)
	require.Contains(t, job.GitInfo.RepoURL.Reveal(), "gitlab-ci-token:"+queued.Token+"@")
	require.Equal(t, "db", job.Services[0].Alias)
	got, _ := s.Job(job.ID)
	require.Equal(t, gitlabfake.StateRunning, got.State)

	jt := map[string]string{"JOB-TOKEN": queued.Token}
	trace := func(cr, data string, hdr map[string]string) reply {
		h := map[string]string{}
		maps.Copy(h, hdr)
		if cr != "" {
			h["Content-Range"] = cr
		}
		r, _ := do(t, s, call{method: "PATCH", path: fmt.Sprintf("/jobs/%d/trace", job.ID), header: h, raw: data})
		return r
	}
	r := trace("0-4", "héllo", jt)
	require.Equal(t, 202, r.StatusCode)
	require.Equal(t, "0-6", r.Header.Get("Range"))
	require.Equal(t, "running", r.Header.Get("Job-Status"))
	require.Equal(t, 416, trace("9-9", "x", jt).StatusCode)
	require.Equal(t, 400, trace("", "x", jt).StatusCode)
	require.Equal(t, 403, trace("6-6", "x", map[string]string{"JOB-TOKEN": "wrong"}).StatusCode)
	r = trace("4-6", "lo!", jt)
	require.Equal(t, "0-7", r.Header.Get("Range"), "truncate and write at start")

	resp, body = do(t, s, call{method: "GET", path: "/job", header: jt})
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(body), `"status":"running"`)

	got, _ = s.Job(job.ID)
	sum := fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE(got.Trace))
	final := map[string]any{
		"token": queued.Token, "state": "failed", "failure_reason": "runner_system_failure", "exit_code": 3,
		"output": map[string]any{"checksum": sum, "bytesize": len(got.Trace)},
	}
	put := func(b map[string]any) reply {
		r, _ := do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", job.ID), json: b})
		return r
	}
	require.Equal(t, 400, put(map[string]any{"token": queued.Token, "state": "bogus"}).StatusCode)
	require.Equal(t, 200, put(map[string]any{"token": queued.Token, "state": "running"}).StatusCode)
	require.Equal(t, 202, put(final).StatusCode)
	require.Equal(t, 202, put(final).StatusCode)
	r = put(final)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, "failed", r.Header.Get("Job-Status"))
	r = put(final)
	require.Equal(t, 403, r.StatusCode)
	require.Equal(t, "failed", r.Header.Get("Job-Status"))
	require.Equal(t, 403, trace("8-8", "x", jt).StatusCode)
	resp, _ = do(t, s, call{method: "GET", path: "/job", header: jt})
	require.Equal(t, 401, resp.StatusCode)
	resp, _ = do(t, s, call{method: "PUT", path: "/jobs/999999", json: map[string]any{"token": "x", "state": "failed"}})
	require.Equal(t, 404, resp.StatusCode)

	got, _ = s.Job(job.ID)
	require.Equal(t, "runner_system_failure", got.FailureReason)
	require.Equal(t, 3, got.ExitCode)
	require.Empty(t, got.OutputMismatch)
	require.Equal(t, "héllo!", string(got.Trace))
	require.Equal(t, 6, s.Requests("/jobs/:id/trace"))
}

func TestCancelAndSimulate(t *testing.T) {
	tests := []struct {
		name     string
		graceful bool
		want     string
	}{
		{"immediate", false, gitlabfake.StateCanceled},
		{"graceful", true, gitlabfake.StateCanceling},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, gitlabfake.Options{})
			s.AddRunner("glrt-r")
			j := s.Enqueue(gitlabfake.JobSpec{RunnerToken: "glrt-r"})
			resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{
				"token": "glrt-r",
				"info":  map[string]any{"features": map[string]bool{"cancel_gracefully": tc.graceful}},
			}})
			require.Equal(t, 201, resp.StatusCode)
			require.NoError(t, s.Cancel(j.ID))
			got, _ := s.Job(j.ID)
			require.Equal(t, tc.want, got.State)
			if tc.graceful {
				r, _ := do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "failed"}})
				require.Equal(t, 200, r.StatusCode)
				require.Equal(t, "canceled", r.Header.Get("Job-Status"))
			}
			require.Error(t, s.SimulateRun(j.ID, "x", "success"))
		})
	}

	s := start(t, gitlabfake.Options{})
	s.AddRunner("glrt-r")
	j := s.Enqueue(gitlabfake.JobSpec{})
	require.NoError(t, s.Cancel(j.ID), "pending job")
	j = s.Enqueue(gitlabfake.JobSpec{})
	resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-r"}})
	require.Equal(t, 201, resp.StatusCode)
	require.NoError(t, s.SimulateRun(j.ID, "done\n", "success"))
	require.NoError(t, s.WaitAll(t.Context(), func(j gitlabfake.Job) bool { return j.State == "success" || j.State == "canceled" }))
}

func TestReadAPI(t *testing.T) {
	s := start(t, gitlabfake.Options{})
	s.AddRunner("glrt-r")
	j := s.Enqueue(gitlabfake.JobSpec{ProjectID: 7})
	s.AddGroup(12, "acme/platform", map[string]string{"cc_orga_id": "orga_1"})
	admin := map[string]string{"PRIVATE-TOKEN": gitlabfake.DefaultAdminToken}
	tests := []struct {
		name   string
		c      call
		status int
		body   string
	}{
		{"job no token", call{method: "GET", path: fmt.Sprintf("/projects/7/jobs/%d", j.ID)}, 401, ""},
		{"job bad token", call{method: "GET", path: fmt.Sprintf("/projects/7/jobs/%d", j.ID), header: map[string]string{"PRIVATE-TOKEN": "x"}}, 401, ""},
		{"job ok", call{method: "GET", path: fmt.Sprintf("/projects/7/jobs/%d", j.ID), header: admin}, 200, `"status":"pending"`},
		{"job other project", call{method: "GET", path: fmt.Sprintf("/projects/8/jobs/%d", j.ID), header: admin}, 404, ""},
		{"trace none yet", call{method: "GET", path: fmt.Sprintf("/projects/7/jobs/%d/trace", j.ID), header: admin}, 404, ""},
		{"attrs by id", call{method: "GET", path: "/groups/12/custom_attributes", header: admin}, 200, `[{"key":"cc_orga_id","value":"orga_1"}]`},
		{"attrs by path", call{method: "GET", path: "/groups/acme%2Fplatform/custom_attributes", header: admin}, 200, `"orga_1"`},
		{"attr by key", call{method: "GET", path: "/groups/12/custom_attributes/cc_orga_id", header: admin}, 200, `"orga_1"`},
		{"attr missing", call{method: "GET", path: "/groups/12/custom_attributes/nope", header: admin}, 404, ""},
		{"attrs unknown group", call{method: "GET", path: "/groups/99/custom_attributes", header: admin}, 404, ""},
		{"attrs no admin", call{method: "GET", path: "/groups/12/custom_attributes"}, 401, ""},
		{"group with attrs", call{method: "GET", path: "/groups/12?with_custom_attributes=true", header: admin}, 200, `"custom_attributes"`},
		{"namespace", call{method: "GET", path: "/namespaces/acme%2Fplatform", header: admin}, 200, `"kind":"group"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, s, tc.c)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Contains(t, string(body), tc.body)
		})
	}
	resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-r"}})
	require.Equal(t, 201, resp.StatusCode)
	require.NoError(t, s.SimulateRun(j.ID, "log line\n", "failed"))
	resp, body := do(t, s, call{method: "GET", path: fmt.Sprintf("/projects/7/jobs/%d/trace", j.ID), header: admin})
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "log line\n", string(body))
}

func TestFaults(t *testing.T) {
	s := start(t, gitlabfake.Options{Seed: 1})
	s.AddRunner("glrt-r")
	body := map[string]any{"token": "glrt-r"}
	s.SetFault("/jobs/request", gitlabfake.Fault{Statuses: []int{429, 0, 503}, RetryAfter: "7"})
	resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: body})
	require.Equal(t, 429, resp.StatusCode)
	require.Equal(t, "7", resp.Header.Get("Retry-After"))
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: body})
	require.Equal(t, 204, resp.StatusCode)
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: body})
	require.Equal(t, 503, resp.StatusCode)
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: body})
	require.Equal(t, 204, resp.StatusCode, "forced statuses consumed")

	s.SetFault("/jobs/request", gitlabfake.Fault{ErrorRate: 1, Status: 502})
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: body})
	require.Equal(t, 502, resp.StatusCode)

	s.SetFault("/jobs/request", gitlabfake.Fault{Statuses: []int{-1}})
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.URL()+"/api/v4/jobs/request", bytes.NewReader([]byte(`{}`)))
	require.NoError(t, err)
	_, err = http.DefaultClient.Do(req) //nolint:bodyclose // no response expected
	require.Error(t, err, "dropped connection")

	s.ClearFaults()
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: body})
	require.Equal(t, 204, resp.StatusCode)
	require.Equal(t, 7, s.Requests("/jobs/request"))
	require.Equal(t, 7, s.TotalRequests())
	require.Len(t, s.Recorded("POST /jobs/request"), 7)
}

func TestPausedAndLongPoll(t *testing.T) {
	s := start(t, gitlabfake.Options{LongPoll: 50 * 1e6})
	s.AddRunner("glrt-r")
	resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-r"}})
	v := resp.Header.Get("X-GitLab-Last-Update")
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-r", "last_update": v}})
	require.Equal(t, 204, resp.StatusCode)
	require.Empty(t, resp.Header.Get("X-GitLab-Last-Update"), "long-poll timeout answers without header")
	s.SetPaused("glrt-r", true)
	s.Enqueue(gitlabfake.JobSpec{})
	resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-r"}})
	require.Equal(t, 204, resp.StatusCode, "paused runner gets no job")
	require.NotEmpty(t, resp.Header.Get("X-GitLab-Last-Update"))
}

func TestListenAndServe(t *testing.T) {
	s := gitlabfake.New(gitlabfake.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0") }()
	s.AddRunner("glrt-dev")
	status := 0
	require.Eventually(t, func() bool {
		if s.URL() == "" {
			return false
		}
		req, err := http.NewRequestWithContext(t.Context(), "POST", s.URL()+"/api/v4/jobs/request", bytes.NewReader([]byte(`{"token":"glrt-dev"}`)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		status = resp.StatusCode
		return true
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 204, status)
	cancel()
	require.NoError(t, <-done)
}

func TestTwoPhaseCommit(t *testing.T) {
	const accept = 200 * time.Millisecond
	twoPhase := map[string]any{"features": map[string]bool{"two_phase_job_commit": true}}
	tests := []struct {
		name string
		// act runs on the job just acquired with two_phase_job_commit.
		act       func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job)
		wantState string
		requeued  int
	}{
		{name: "accepted by PUT running", act: func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job) {
			resp, _ := do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, "running", resp.Header.Get("Job-Status"))
			resp, _ = do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 200, resp.StatusCode, "PUT running on a running job is a keep-alive")
			resp, _ = do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "pending"}})
			require.Equal(t, 400, resp.StatusCode, "a running job cannot go back to pending")
		}, wantState: gitlabfake.StateRunning},
		{name: "pending keep-alive then accepted", act: func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job) {
			resp, _ := do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "pending"}})
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, "pending", resp.Header.Get("Job-Status"))
			resp, _ = do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 200, resp.StatusCode)
		}, wantState: gitlabfake.StateRunning},
		{name: "failed without ever running", act: func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job) {
			resp, _ := do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "failed", "failure_reason": "runner_system_failure"}})
			require.Equal(t, 200, resp.StatusCode)
		}, wantState: gitlabfake.StateFailed},
		{name: "no trace before the accept", act: func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job) {
			resp, _ := do(t, s, call{method: "PATCH", path: fmt.Sprintf("/jobs/%d/trace", j.ID), raw: "x", header: map[string]string{"JOB-TOKEN": j.Token, "Content-Range": "0-0"}})
			require.Equal(t, 403, resp.StatusCode)
			require.Equal(t, "pending", resp.Header.Get("Job-Status"))
			resp, _ = do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 200, resp.StatusCode)
		}, wantState: gitlabfake.StateRunning},
		{name: "canceled before the accept", act: func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job) {
			require.NoError(t, s.Cancel(j.ID))
			resp, _ := do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 403, resp.StatusCode)
			require.Equal(t, "canceled", resp.Header.Get("Job-Status"))
		}, wantState: gitlabfake.StateCanceled},
		{name: "not accepted in time: re-queued, then served again", act: func(t *testing.T, s *gitlabfake.Server, j gitlabfake.Job) {
			got, err := s.WaitJob(t.Context(), j.ID, func(j gitlabfake.Job) bool { return j.Requeued == 1 })
			require.NoError(t, err)
			require.Empty(t, got.RunnerToken, "back in the queue")
			resp, _ := do(t, s, call{method: "GET", path: "/job", header: map[string]string{"JOB-TOKEN": j.Token}})
			require.Equal(t, 401, resp.StatusCode, "a queued job's token works nowhere")
			resp, _ = do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 409, resp.StatusCode, "a late accept of a re-queued job")
			resp, body := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-2pc", "info": twoPhase}})
			require.Equal(t, 201, resp.StatusCode)
			again, err := coordinator.ParseJob(body)
			require.NoError(t, err)
			require.Equal(t, j.ID, again.ID, "same job id")
			require.Equal(t, j.Token, again.Token.Reveal(), "same job token")
			resp, _ = do(t, s, call{method: "PUT", path: fmt.Sprintf("/jobs/%d", j.ID), json: map[string]any{"token": j.Token, "state": "running"}})
			require.Equal(t, 200, resp.StatusCode)
		}, wantState: gitlabfake.StateRunning, requeued: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, gitlabfake.Options{AcceptTimeout: accept, TraceUpdateInterval: -1})
			s.AddRunner("glrt-2pc")
			queued := s.Enqueue(gitlabfake.JobSpec{})
			resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-2pc", "info": twoPhase}})
			require.Equal(t, 201, resp.StatusCode)
			got, _ := s.Job(queued.ID)
			require.Equal(t, gitlabfake.StatePending, got.State, "assigned, still pending")
			require.Equal(t, "glrt-2pc", got.RunnerToken)
			require.True(t, got.TwoPhase)
			resp, body := do(t, s, call{method: "GET", path: "/job", header: map[string]string{"JOB-TOKEN": queued.Token}})
			require.Equal(t, 200, resp.StatusCode)
			require.Contains(t, string(body), `"status":"pending"`)
			resp, _ = do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-2pc", "info": twoPhase}})
			require.Equal(t, 204, resp.StatusCode, "an assigned job is not served twice")

			tc.act(t, s, queued)
			got, _ = s.Job(queued.ID)
			require.Equal(t, tc.wantState, got.State)
			require.Equal(t, tc.requeued, got.Requeued)
		})
	}
}

func TestWithoutTwoPhaseRunningAtOnce(t *testing.T) {
	s := start(t, gitlabfake.Options{AcceptTimeout: time.Millisecond})
	s.AddRunner("glrt-1pc")
	queued := s.Enqueue(gitlabfake.JobSpec{})
	resp, _ := do(t, s, call{method: "POST", path: "/jobs/request", json: map[string]any{"token": "glrt-1pc", "info": map[string]any{"features": map[string]bool{"two_phase_job_commit": false}}}})
	require.Equal(t, 201, resp.StatusCode)
	got, _ := s.Job(queued.ID)
	require.Equal(t, gitlabfake.StateRunning, got.State)
	require.False(t, got.TwoPhase)
	require.Zero(t, got.Requeued)
}
