package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

const runnerToken = "glrt-t1_secretRunnerToken123"

// observed records Observer calls.
type observed struct {
	mu    sync.Mutex
	calls map[string]int
}

func (o *observed) observe(api, endpoint string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.calls == nil {
		o.calls = map[string]int{}
	}
	o.calls[fmt.Sprintf("%s %s %d", api, endpoint, status)]++
}

func (o *observed) get(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[k]
}

type env struct {
	fake *gitlabfake.Server
	c    *coordinator.Client
	hook *test.Hook
	obs  *observed
}

func newEnv(t *testing.T, fo gitlabfake.Options, mod func(*coordinator.Options)) *env {
	t.Helper()
	fake := gitlabfake.New(fo).Start()
	t.Cleanup(fake.Close)
	fake.AddRunner(runnerToken)
	lg, hook := test.NewNullLogger()
	lg.SetLevel(logrus.DebugLevel)
	obs := &observed{}
	o := coordinator.Options{
		Logger: lg, Observer: obs.observe, SystemID: "s_0123456789ab", Version: "1.2.3", Revision: "abc",
		RetryWaitMin: time.Millisecond, RetryWaitMax: 20 * time.Millisecond, Timeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	return &env{fake: fake, c: coordinator.New(fake.URL()+"/", config.Secret(runnerToken), o), hook: hook, obs: obs}
}

// requireNoSecrets checks that no log line and no error mention a token.
func (e *env) requireNoSecrets(t *testing.T, secrets []string, errs ...error) {
	t.Helper()
	for _, entry := range e.hook.AllEntries() {
		line, err := entry.String()
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, line, s)
		}
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s)
		}
	}
}

func TestRequestJob(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		enqueue  bool
		token    string
		wantJob  bool
		wantCode int
		requests int
	}{
		{name: "201 job", enqueue: true, wantJob: true, requests: 1},
		{name: "204 no job", requests: 1},
		{name: "409 conflict", statuses: []int{409}, requests: 1},
		{name: "403 bad token", token: "glrt-revoked-token", wantCode: 403, requests: 1},
		{name: "429 retried", statuses: []int{429, 429}, enqueue: true, wantJob: true, requests: 3},
		{name: "5xx retried", statuses: []int{500, 502, 503}, enqueue: true, wantJob: true, requests: 4},
		{name: "5xx exhausted", statuses: []int{500, 500, 500, 500, 500}, wantCode: 500, requests: 5},
		{name: "429 exhausted", statuses: []int{429, 429, 429, 429, 429}, wantCode: 429, requests: 5},
		{name: "dropped connection retried", statuses: []int{-1}, enqueue: true, wantJob: true, requests: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, gitlabfake.Options{}, nil)
			c := e.c
			if tc.token != "" {
				c = coordinator.New(e.fake.URL(), config.Secret(tc.token), coordinator.Options{RetryWaitMin: time.Millisecond})
			}
			var queued gitlabfake.Job
			if tc.enqueue {
				queued = e.fake.Enqueue(gitlabfake.JobSpec{Variables: map[string]string{"CI_CLEVER_CLOUD_FLAVOR": "M"}})
			}
			e.fake.SetFault("/jobs/request", gitlabfake.Fault{Statuses: tc.statuses, RetryAfter: "0"})
			job, err := c.RequestJob(t.Context())
			require.Equal(t, tc.requests, e.fake.Requests("/jobs/request"))
			if tc.wantCode != 0 {
				require.Error(t, err)
				var he *coordinator.HTTPError
				require.ErrorAs(t, err, &he)
				require.Equal(t, tc.wantCode, he.StatusCode)
				require.Equal(t, tc.wantCode != 403, coordinator.Retryable(err))
				require.NotContains(t, err.Error(), runnerToken)
				if tc.token != "" {
					require.NotContains(t, err.Error(), tc.token)
				}
				return
			}
			require.NoError(t, err)
			if !tc.wantJob {
				require.Nil(t, job)
				return
			}
			require.NotNil(t, job)
			require.Equal(t, queued.ID, job.ID)
			f, _ := job.Variable("CI_CLEVER_CLOUD_FLAVOR")
			require.Equal(t, "M", f)
			require.JSONEq(t, string(queued.Payload), string(job.Raw))
			e.requireNoSecrets(t, []string{runnerToken, queued.Token})
		})
	}
}

func TestRequestJobBody(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	job, err := e.c.RequestJob(t.Context())
	require.NoError(t, err)
	require.Nil(t, job)
	job, err = e.c.RequestJob(t.Context())
	require.NoError(t, err)
	require.Nil(t, job)
	rec := e.fake.Recorded("/jobs/request")
	require.Len(t, rec, 2)
	var first, second struct {
		Token      string `json:"token"`
		SystemID   string `json:"system_id"`
		LastUpdate string `json:"last_update"`
		Info       struct {
			Name, Version, Revision, Platform, Architecture, Executor string
			Features                                                  map[string]bool
		} `json:"info"`
	}
	require.NoError(t, json.Unmarshal(rec[0].Body, &first))
	require.NoError(t, json.Unmarshal(rec[1].Body, &second))
	require.Equal(t, runnerToken, first.Token)
	require.Equal(t, "s_0123456789ab", first.SystemID)
	require.Empty(t, first.LastUpdate)
	require.Len(t, second.LastUpdate, 32, "X-GitLab-Last-Update is sent back")
	require.Equal(t, "paas-runner", first.Info.Name)
	require.Equal(t, "1.2.3", first.Info.Version)
	require.Equal(t, "docker", first.Info.Executor)
	require.True(t, first.Info.Features["two_phase_job_commit"])
	require.True(t, first.Info.Features["trace_checksum"])
	require.True(t, first.Info.Features["return_exit_code"])
	require.Contains(t, first.Info.Features, "cancel_gracefully")
	require.Contains(t, rec[0].Header.Get("User-Agent"), "paas-runner 1.2.3")
	require.Equal(t, 2, e.obs.get("coordinator /jobs/request 204"))
}

func TestRequestJobMalformed(t *testing.T) {
	bodies := map[string]string{
		"not json":   `{"id": 12, "token":`,
		"no token":   `{"id": 12}`,
		"no id":      `{"token": "glcbt-x"}`,
		"wrong type": `{"id": "twelve", "token": "x"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(body))
			}))
			t.Cleanup(srv.Close)
			_, err := coordinator.New(srv.URL, runnerToken, coordinator.Options{}).RequestJob(t.Context())
			require.ErrorIs(t, err, coordinator.ErrMalformedJob)
			require.False(t, coordinator.Retryable(err))
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, func(o *coordinator.Options) { o.RetryWaitMax = 5 * time.Second })
	e.fake.SetFault("/jobs/request", gitlabfake.Fault{Statuses: []int{429}, RetryAfter: "1"})
	start := time.Now()
	_, err := e.c.RequestJob(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, e.fake.Requests("/jobs/request"))
	require.GreaterOrEqual(t, time.Since(start), time.Second, "retry not before Retry-After")

	// A Retry-After beyond RetryWaitMax is returned to the caller at once.
	e.fake.SetFault("/jobs/request", gitlabfake.Fault{Statuses: []int{429}, RetryAfter: "600"})
	_, err = e.c.RequestJob(t.Context())
	var he *coordinator.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, 429, he.StatusCode)
	require.Equal(t, 600*time.Second, he.RetryAfter)
	require.Equal(t, 3, e.fake.Requests("/jobs/request"))
}

func TestContextAndNetworkErrors(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.c.RequestJob(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, coordinator.Retryable(err))

	e.fake.SetFault("/jobs/request", gitlabfake.Fault{Latency: time.Second})
	c := coordinator.New(e.fake.URL(), runnerToken, coordinator.Options{Timeout: 20 * time.Millisecond, RetryMax: -1})
	_, err = c.RequestJob(t.Context())
	require.Error(t, err)
	require.True(t, coordinator.Retryable(err), "per-attempt timeout is transient: %v", err)

	e.fake.Close()
	c = coordinator.New(e.fake.URL(), runnerToken, coordinator.Options{RetryMax: 1, RetryWaitMin: time.Millisecond})
	_, err = c.RequestJob(t.Context())
	require.Error(t, err)
	require.True(t, coordinator.Retryable(err))
	require.NotContains(t, err.Error(), runnerToken)
}

// acquire enqueues a job and acquires it through the client, accepting it
// (two-phase commit) as a runner does.
func acquire(t *testing.T, e *env) *coordinator.Job {
	t.Helper()
	e.fake.Enqueue(gitlabfake.JobSpec{})
	job, err := e.c.RequestJob(t.Context())
	require.NoError(t, err)
	require.NotNil(t, job)
	require.NoError(t, e.c.AcceptJob(t.Context(), job.ID, job.Token))
	return job
}

func TestAcceptJob(t *testing.T) {
	tests := []struct {
		name string
		// prepare acts on the acquired, not yet accepted job.
		prepare     func(t *testing.T, e *env, j *coordinator.Job)
		token       config.Secret // "" = the job's own
		statuses    []int         // forced answers of PUT /jobs/:id
		wantErr     bool
		notAccepted bool
		retryable   bool
		wantState   string
		requests    int
	}{
		{name: "200 accepted", wantState: gitlabfake.StateRunning, requests: 1},
		{name: "already running: keep-alive 200", prepare: func(t *testing.T, e *env, j *coordinator.Job) {
			require.NoError(t, e.c.AcceptJob(t.Context(), j.ID, j.Token))
		}, wantState: gitlabfake.StateRunning, requests: 2},
		{name: "5xx retried then accepted", statuses: []int{502, 503}, wantState: gitlabfake.StateRunning, requests: 3},
		{name: "403 canceled", prepare: func(t *testing.T, e *env, j *coordinator.Job) {
			require.NoError(t, e.fake.Cancel(j.ID))
		}, wantErr: true, notAccepted: true, wantState: gitlabfake.StateCanceled, requests: 1},
		{name: "403 failed", prepare: func(t *testing.T, e *env, j *coordinator.Job) {
			require.NoError(t, e.c.FailJob(t.Context(), j.ID, j.Token, coordinator.RunnerSystemFailure, 1))
		}, wantErr: true, notAccepted: true, wantState: gitlabfake.StateFailed, requests: 2},
		{name: "403 success", prepare: func(t *testing.T, e *env, j *coordinator.Job) {
			require.NoError(t, e.c.AcceptJob(t.Context(), j.ID, j.Token))
			require.NoError(t, e.fake.SimulateRun(j.ID, "ok\n", gitlabfake.StateSuccess))
		}, wantErr: true, notAccepted: true, wantState: gitlabfake.StateSuccess, requests: 2},
		{name: "403 wrong token", token: "glcbt-not-this-job", wantErr: true, notAccepted: true, wantState: gitlabfake.StatePending, requests: 1},
		{name: "409 another manager holds it", statuses: []int{409}, wantErr: true, notAccepted: true, wantState: gitlabfake.StatePending, requests: 1},
		{name: "5xx exhausted", statuses: []int{500, 500, 500, 500, 500}, wantErr: true, retryable: true, wantState: gitlabfake.StatePending, requests: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, gitlabfake.Options{TraceUpdateInterval: -1}, nil)
			e.fake.Enqueue(gitlabfake.JobSpec{})
			job, err := e.c.RequestJob(t.Context())
			require.NoError(t, err)
			require.NotNil(t, job)
			snap, _ := e.fake.Job(job.ID)
			require.Equal(t, gitlabfake.StatePending, snap.State, "two_phase_job_commit: pending until accepted")
			if tc.prepare != nil {
				tc.prepare(t, e, job)
			}
			e.fake.SetFault("/jobs/:id", gitlabfake.Fault{Statuses: tc.statuses})
			tok := job.Token
			if tc.token != "" {
				tok = tc.token
			}
			err = e.c.AcceptJob(t.Context(), job.ID, tok)
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.notAccepted, errors.Is(err, coordinator.ErrJobNotAccepted))
			require.Equal(t, tc.retryable, coordinator.Retryable(err))
			require.Equal(t, tc.requests, e.fake.Requests("/jobs/:id"))
			snap, _ = e.fake.Job(job.ID)
			require.Equal(t, tc.wantState, snap.State)
			rec := e.fake.Recorded("/jobs/:id")
			var body map[string]any
			require.NoError(t, json.Unmarshal(rec[len(rec)-1].Body, &body))
			require.Equal(t, map[string]any{"token": tok.Reveal(), "state": "running"}, body)
			e.requireNoSecrets(t, []string{runnerToken, job.Token.Reveal()}, err)
		})
	}
}

func TestJobStatus(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	job := acquire(t, e)
	st, err := e.c.JobStatus(t.Context(), job.Token)
	require.NoError(t, err)
	require.Equal(t, coordinator.JobState{Status: "running"}, st)
	rec := e.fake.Recorded("/job")
	require.Empty(t, rec[0].Query, "job token goes in a header, never the URL")
	require.Equal(t, job.Token.Reveal(), rec[0].Header.Get("JOB-TOKEN"))

	require.NoError(t, e.fake.SimulateRun(job.ID, "ok\n", gitlabfake.StateSuccess))
	st, err = e.c.JobStatus(t.Context(), job.Token)
	require.NoError(t, err)
	require.True(t, st.Finished, "401 means finished")

	e.fake.SetFault("/job", gitlabfake.Fault{Statuses: []int{404}})
	_, err = e.c.JobStatus(t.Context(), job.Token)
	require.Equal(t, 404, coordinator.StatusCode(err))
	e.requireNoSecrets(t, []string{runnerToken, job.Token.Reveal()}, err)
}

func TestAppendTraceByteRanges(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	job := acquire(t, e)
	parts := []string{"Préparation de l'hôte…\n", "\x1b[31mÉchec: 無効なフレーバー ✗\x1b[0m\n", "ok\n"}
	var off int64
	var want []string
	for _, p := range parts {
		n, err := e.c.AppendTrace(t.Context(), job.ID, job.Token, off, []byte(p))
		require.NoError(t, err)
		require.Equal(t, off+int64(len(p)), n)
		want = append(want, fmt.Sprintf("%d-%d", off, off+int64(len(p))-1))
		off = n
	}
	var got []string
	for _, r := range e.fake.Recorded("/jobs/:id/trace") {
		got = append(got, r.Header.Get("Content-Range"))
		require.Empty(t, r.Query)
	}
	require.Equal(t, want, got)
	snap, _ := e.fake.Job(job.ID)
	require.Equal(t, strings.Join(parts, ""), string(snap.Trace))

	n, err := e.c.AppendTrace(t.Context(), job.ID, job.Token, off, nil)
	require.NoError(t, err)
	require.Equal(t, off, n, "empty data sends nothing")
	require.Len(t, e.fake.Recorded("/jobs/:id/trace"), 3)
}

func TestAppendTraceResyncAndErrors(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	job := acquire(t, e)
	n, err := e.c.AppendTrace(t.Context(), job.ID, job.Token, 0, []byte("first\n"))
	require.NoError(t, err)
	require.Equal(t, int64(6), n)

	// Stale offset beyond the stored size: 416, resync to 6, retry once.
	n, err = e.c.AppendTrace(t.Context(), job.ID, job.Token, 100, []byte("second\n"))
	require.NoError(t, err)
	require.Equal(t, int64(13), n)
	snap, _ := e.fake.Job(job.ID)
	require.Equal(t, "first\nsecond\n", string(snap.Trace))

	// A coordinator that keeps answering 416.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Range", "0-3")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	}))
	t.Cleanup(srv.Close)
	_, err = coordinator.New(srv.URL, runnerToken, coordinator.Options{}).AppendTrace(t.Context(), 1, "glcbt-tok", 10, []byte("x"))
	var tre *coordinator.TraceRangeError
	require.ErrorAs(t, err, &tre)
	require.Equal(t, int64(3), tre.Stored)

	// Job over: 403 with a final Job-Status.
	require.NoError(t, e.fake.Cancel(job.ID))
	_, err = e.c.AppendTrace(t.Context(), job.ID, job.Token, 13, []byte("late\n"))
	require.ErrorIs(t, err, coordinator.ErrJobNotRunning)
	require.Equal(t, 403, coordinator.StatusCode(err))
	e.requireNoSecrets(t, []string{runnerToken, job.Token.Reveal()}, err)
}

func TestFailJob(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{FinalUpdateAccepted: 2, TraceUpdateInterval: -1}, nil)
	job := acquire(t, e)
	err := e.c.FailJob(t.Context(), job.ID, job.Token, "job failed to launch", 103)
	require.ErrorIs(t, err, coordinator.ErrInvalidFailureReason)
	require.Equal(t, 1, e.fake.Requests("/jobs/:id"), "rejected before any request (1 = the accept)")

	require.NoError(t, e.c.FailJob(t.Context(), job.ID, job.Token, coordinator.RunnerSystemFailure, 103))
	require.Equal(t, 1+3, e.fake.Requests("/jobs/:id"), "the accept, then two 202 then 200")
	snap, _ := e.fake.Job(job.ID)
	require.Equal(t, gitlabfake.StateFailed, snap.State)
	require.Equal(t, "runner_system_failure", snap.FailureReason)
	require.Equal(t, 103, snap.ExitCode)
	var body map[string]any
	require.NoError(t, json.Unmarshal(e.fake.Recorded("/jobs/:id")[1].Body, &body))
	require.Equal(t, map[string]any{"token": job.Token.Reveal(), "state": "failed", "failure_reason": "runner_system_failure", "exit_code": float64(103)}, body)

	// Already over: 403 with Job-Status failed is not an error.
	require.NoError(t, e.c.FailJob(t.Context(), job.ID, job.Token, coordinator.ScriptFailure, 1))

	// 403 while still running (e.g. wrong token) is an error.
	job2 := acquire(t, e)
	err = e.c.FailJob(t.Context(), job2.ID, "glcbt-wrong-token", coordinator.ScriptFailure, 1)
	require.Equal(t, 403, coordinator.StatusCode(err))
	e.fake.SetFault("/jobs/:id", gitlabfake.Fault{Statuses: []int{503, 503, 503, 503, 503}})
	err = e.c.FailJob(t.Context(), job2.ID, job2.Token, coordinator.ScriptFailure, 1)
	require.True(t, coordinator.Retryable(err))
	e.requireNoSecrets(t, []string{runnerToken, job.Token.Reveal(), job2.Token.Reveal()}, err)
}

func TestReadAPI(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	admin := config.Secret(gitlabfake.DefaultAdminToken)
	job := acquire(t, e)
	_, err := e.c.ReadTrace(t.Context(), admin, job.JobInfo.ProjectID, job.ID)
	require.Equal(t, 404, coordinator.StatusCode(err), "no log yet")
	_, err = e.c.AppendTrace(t.Context(), job.ID, job.Token, 0, []byte("Running with gitlab-runner\n"))
	require.NoError(t, err)
	tr, err := e.c.ReadTrace(t.Context(), admin, job.JobInfo.ProjectID, job.ID)
	require.NoError(t, err)
	require.Equal(t, "Running with gitlab-runner\n", string(tr))
	_, err = e.c.ReadTrace(t.Context(), "glpat-not-admin", job.JobInfo.ProjectID, job.ID)
	require.Equal(t, 401, coordinator.StatusCode(err))

	st, err := e.c.ProjectJob(t.Context(), admin, job.JobInfo.ProjectID, job.ID)
	require.NoError(t, err)
	require.Equal(t, coordinator.JobState{Status: "running"}, st)
	require.NoError(t, e.fake.Cancel(job.ID))
	st, err = e.c.ProjectJob(t.Context(), admin, job.JobInfo.ProjectID, job.ID)
	require.NoError(t, err)
	require.Equal(t, coordinator.JobState{Status: "canceled", Finished: true}, st)
	e.requireNoSecrets(t, []string{gitlabfake.DefaultAdminToken, runnerToken}, err)
}

func TestGroupCustomAttributes(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	e.fake.AddGroup(12, "acme/platform", map[string]string{"cc_orga_id": "orga_x", "cc_orga_token": "tok"})
	admin := config.Secret(gitlabfake.DefaultAdminToken)
	want := map[string]string{"cc_orga_id": "orga_x", "cc_orga_token": "tok"}
	for _, g := range []string{"12", "acme/platform"} {
		t.Run(g, func(t *testing.T) {
			got, err := e.c.GroupCustomAttributes(t.Context(), admin, g)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
	_, err := e.c.GroupCustomAttributes(t.Context(), admin, "nope/none")
	require.Equal(t, 404, coordinator.StatusCode(err))
	_, err = e.c.GroupCustomAttributes(t.Context(), "glpat-secret-user", "12")
	require.Equal(t, 401, coordinator.StatusCode(err))
	require.NotContains(t, err.Error(), "glpat-secret-user")
	e.fake.SetFault("/groups/:id/custom_attributes", gitlabfake.Fault{Statuses: []int{502}})
	got, err := e.c.GroupCustomAttributes(t.Context(), admin, "12")
	require.NoError(t, err, "502 retried")
	require.Equal(t, want, got)
	require.Equal(t, 1, e.obs.get("coordinator /groups/:id/custom_attributes 502"))
	require.Equal(t, 6, e.fake.Requests("/groups/:id/custom_attributes"))
	require.Equal(t, 6, e.fake.TotalRequests(), "no extra probing request")
	e.requireNoSecrets(t, []string{gitlabfake.DefaultAdminToken, "glpat-secret-user"})
}

func TestRegistrationCalls(t *testing.T) {
	e := newEnv(t, gitlabfake.Options{}, nil)
	reg := coordinator.New(e.fake.URL(), gitlabfake.DefaultRegistrationToken, coordinator.Options{SystemID: "s_0123456789ab"})
	r, err := reg.Register(t.Context(), coordinator.RegisterOptions{Description: "eu-1", TagList: []string{"a", "b"}, Locked: true, Paused: true})
	require.NoError(t, err)
	require.NotZero(t, r.ID)
	fr, ok := e.fake.RunnerByToken(r.Token.Reveal())
	require.True(t, ok)
	require.Equal(t, []string{"a", "b"}, fr.TagList)
	require.True(t, fr.Paused)

	bad := coordinator.New(e.fake.URL(), "GR1348941wrong", coordinator.Options{})
	_, err = bad.Register(t.Context(), coordinator.RegisterOptions{})
	require.Equal(t, 403, coordinator.StatusCode(err))
	require.NotContains(t, err.Error(), "GR1348941wrong")

	v, err := e.c.Verify(t.Context())
	require.NoError(t, err)
	require.NotZero(t, v.ID)
	fr, _ = e.fake.RunnerByToken(runnerToken)
	require.Contains(t, fr.Managers, "s_0123456789ab")
	require.NoError(t, e.c.DeleteManager(t.Context()))
	require.Equal(t, 404, coordinator.StatusCode(e.c.DeleteManager(t.Context())))

	legacy := coordinator.New(e.fake.URL(), r.Token, coordinator.Options{})
	require.NoError(t, legacy.DeleteRunner(t.Context()))
	err = legacy.DeleteRunner(t.Context())
	require.Equal(t, 403, coordinator.StatusCode(err))
	_, err = legacy.Verify(t.Context())
	require.Equal(t, 403, coordinator.StatusCode(err))
	for _, rec := range e.fake.Recorded("") {
		require.Empty(t, rec.Query, "%s %s: no token in URLs", rec.Method, rec.Endpoint)
	}
}

// An error body echoing a token across the truncation limit keeps no part
// of it (the body used to be truncated first, then scrubbed, so a cut
// token no longer matched and its start reached errors and logs).
func TestHTTPErrorBodyScrubbedBeforeTruncation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(strings.Repeat("x", 500) + runnerToken + " was refused"))
	}))
	defer srv.Close()
	cl := coordinator.New(srv.URL, config.Secret(runnerToken), coordinator.Options{RetryMax: -1})
	_, err := cl.RequestJob(t.Context())
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, coordinator.StatusCode(err))
	require.NotContains(t, err.Error(), runnerToken[:8])
}
