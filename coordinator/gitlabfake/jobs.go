package gitlabfake

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// Job states.
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateSuccess   = "success"
	StateFailed    = "failed"
	StateCanceling = "canceling"
	StateCanceled  = "canceled"
)

// Service is one service of a JobSpec.
type Service struct {
	Name  string
	Alias string
}

// JobSpec describes a job to enqueue; Enqueue fills the rest of a
// realistic payload (gitlab-runner-api.md §3.4).
type JobSpec struct {
	// RunnerToken restricts the job to one runner ("" = any runner).
	RunnerToken string
	// Project is the project full path (default "acme/platform/widget").
	Project string
	// ProjectID defaults to 42.
	ProjectID int64
	// Name and Stage of the job (default "unit-tests", "test").
	Name, Stage string
	// Script and AfterScript are the job's steps (default script
	// ["echo hello"]).
	Script, AfterScript []string
	// Variables are added to the predefined ones (public, not masked), in
	// key order; e.g. CI_CLEVER_CLOUD_FLAVOR.
	Variables map[string]string
	// Image is the job image (default "alpine:3.20"; "-" = none).
	Image string
	// Services of the job.
	Services []Service
	// Timeout in seconds (default 3600).
	Timeout int
	// RepoURL overrides git_info.repo_url (default
	// <scheme>://gitlab-ci-token:<job token>@<host>/<project>.git).
	RepoURL string
	// Mutate, when set, edits the payload (as decoded JSON) before it is
	// served, e.g. to serve a malformed one.
	Mutate func(payload map[string]any)
}

// Job is a snapshot of a job of the fake.
type Job struct {
	ID    int64
	Token string
	// RunnerToken is the runner that acquired it ("" while in the queue).
	// A pending job with a RunnerToken is assigned to that runner and
	// awaits its two-phase accept.
	RunnerToken   string
	ProjectID     int64
	State         string
	FailureReason string
	ExitCode      int
	Trace         []byte
	Payload       json.RawMessage
	// Updates counts PUT /jobs/:id received with a valid token.
	Updates int
	// OutputMismatch describes a final PUT whose output.checksum or
	// output.bytesize disagreed with the stored trace ("" = none).
	OutputMismatch string
	// CancelGracefully is what the acquiring request advertised.
	CancelGracefully bool
	// TwoPhase is whether the acquiring request advertised
	// two_phase_job_commit: the job then stays pending until the runner's
	// PUT state=running.
	TwoPhase bool
	// Requeued counts how many times the job went back to the queue
	// because its two-phase accept did not come within
	// Options.AcceptTimeout. It keeps its id and job token.
	Requeued int
}

type job struct {
	Job
	spec      JobSpec
	accepted  int // 202 answers given to final PUTs
	traceSeen bool
	// assignment counts assignments; the accept timer of an earlier one
	// does nothing.
	assignment  int
	acceptTimer *time.Timer
}

// awaitingAccept reports whether j is assigned but not yet accepted
// (two-phase commit).
func (j *job) awaitingAccept() bool { return j.State == StatePending && j.RunnerToken != "" }

// armAcceptLocked (re)starts the accept timeout of the current assignment:
// when it expires with the job still awaiting its accept, the job goes back
// to the queue.
func (s *Server) armAcceptLocked(j *job) {
	if j.acceptTimer != nil {
		j.acceptTimer.Stop()
	}
	gen := j.assignment
	j.acceptTimer = time.AfterFunc(s.opts.AcceptTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if j.assignment != gen || !j.awaitingAccept() {
			return
		}
		j.RunnerToken = ""
		j.TwoPhase = false
		j.Requeued++
		for _, rn := range s.runners {
			rn.queueVersion = randomHex(16)
		}
		s.notifyLocked()
	})
}

func (j *job) snapshot() Job {
	out := j.Job
	out.Trace = slices.Clone(j.Trace)
	out.Payload = slices.Clone(j.Payload)
	return out
}

func (j *job) active() bool { return j.State == StateRunning || j.State == StateCanceling }

// Enqueue adds a pending job and returns its snapshot (with id and job
// token). Every runner's queue version changes.
func (s *Server) Enqueue(spec JobSpec) Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if spec.Project == "" {
		spec.Project = "acme/platform/widget"
	}
	if spec.ProjectID == 0 {
		spec.ProjectID = 42
	}
	if spec.Name == "" {
		spec.Name = "unit-tests"
	}
	if spec.Stage == "" {
		spec.Stage = "test"
	}
	if spec.Script == nil {
		spec.Script = []string{"echo hello"}
	}
	if spec.Image == "" {
		spec.Image = "alpine:3.20"
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 3600
	}
	s.nextJID++
	j := &job{Job: Job{ID: s.nextJID, Token: "glcbt-64_" + randomHex(12), ProjectID: spec.ProjectID, State: StatePending}, spec: spec}
	j.Payload = s.payloadLocked(j)
	s.jobs[j.ID] = j
	s.order = append(s.order, j.ID)
	for _, rn := range s.runners {
		rn.queueVersion = randomHex(16)
	}
	s.notifyLocked()
	return j.snapshot()
}

func variable(k, v string, public, masked bool) map[string]any {
	return map[string]any{"key": k, "value": v, "public": public, "file": false, "masked": masked, "raw": false}
}

// payloadLocked builds the job payload of j.
func (s *Server) payloadLocked(j *job) json.RawMessage {
	sp := j.spec
	server := s.externalURLLocked()
	scheme, host, _ := strings.Cut(server, "://")
	repo := sp.RepoURL
	if repo == "" {
		repo = fmt.Sprintf("%s://gitlab-ci-token:%s@%s/%s.git", scheme, j.Token, host, sp.Project)
	}
	root, _, _ := strings.Cut(sp.Project, "/")
	name := sp.Project[strings.LastIndexByte(sp.Project, '/')+1:]
	vars := []any{
		variable("CI_JOB_ID", strconv.FormatInt(j.ID, 10), true, false),
		variable("CI_JOB_TOKEN", j.Token, false, true),
		variable("CI_JOB_NAME", sp.Name, true, false),
		variable("CI_PROJECT_ID", strconv.FormatInt(sp.ProjectID, 10), true, false),
		variable("CI_PROJECT_PATH", sp.Project, true, false),
		variable("CI_PROJECT_ROOT_NAMESPACE", root, true, false),
		variable("CI_SERVER_URL", server, true, false),
	}
	keys := make([]string, 0, len(sp.Variables))
	for k := range sp.Variables {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vars = append(vars, variable(k, sp.Variables[k], true, false))
	}
	steps := []any{map[string]any{"name": "script", "script": sp.Script, "timeout": sp.Timeout, "when": "on_success", "allow_failure": false}}
	if len(sp.AfterScript) > 0 {
		steps = append(steps, map[string]any{"name": "after_script", "script": sp.AfterScript, "timeout": sp.Timeout, "when": "always", "allow_failure": true})
	}
	services := []any{}
	for _, sv := range sp.Services {
		services = append(services, map[string]any{"name": sv.Name, "alias": sv.Alias, "entrypoint": nil, "command": nil, "ports": []any{}})
	}
	var image any
	if sp.Image != "-" {
		image = map[string]any{"name": sp.Image, "entrypoint": nil, "ports": []any{}, "pull_policy": []string{"if-not-present"}}
	}
	p := map[string]any{
		"id": j.ID, "token": j.Token, "allow_git_fetch": true,
		"job_info": map[string]any{
			"id": j.ID, "name": sp.Name, "stage": sp.Stage, "pipeline_id": 977,
			"project_id": sp.ProjectID, "project_name": name, "project_full_path": sp.Project,
			"namespace_id": 17, "root_namespace_id": 9, "organization_id": 1,
			"instance_id": "", "instance_uuid": "", "user_id": 5, "scoped_user_id": nil,
			"time_in_queue_seconds": 2.4, "project_jobs_running_on_instance_runners_count": "0",
			"queue_size": 0, "queue_depth": 0,
		},
		"git_info": map[string]any{
			"repo_url": repo, "repo_object_format": "sha1", "ref": "main",
			"sha": "3f2a1c9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a39", "before_sha": "0000000000000000000000000000000000000000",
			"ref_type": "branch", "refspecs": []string{"+refs/pipelines/977:refs/pipelines/977", "+refs/heads/main:refs/remotes/origin/main"},
			"depth": 20, "protected": true,
		},
		"runner_info":  map[string]any{"uuid": "", "timeout": sp.Timeout, "runner_session_url": nil},
		"variables":    vars,
		"steps":        steps,
		"hooks":        []any{},
		"image":        image,
		"services":     services,
		"artifacts":    []any{},
		"cache":        []any{},
		"credentials":  []any{map[string]any{"type": "registry", "url": host + ":5050", "username": "gitlab-ci-token", "password": j.Token}},
		"dependencies": []any{},
		"features": map[string]any{"trace_sections": true, "failure_reasons": []string{
			"unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure",
			"runner_system_failure", "missing_dependency_failure", "runner_unsupported", "job_execution_timeout",
			"runner_configuration_error", "runner_external_dependency_failure", "runner_interrupted",
		}},
	}
	if sp.Mutate != nil {
		sp.Mutate(p)
	}
	b, _ := json.Marshal(p)
	return b
}

// Job returns a snapshot of the job with this id.
func (s *Server) Job(id int64) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return Job{}, false
	}
	return j.snapshot(), true
}

// Jobs returns a snapshot of every job, in enqueue order.
func (s *Server) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.jobs[id].snapshot())
	}
	return out
}

// WaitAll blocks until every job satisfies pred (and there is at least
// one job), or ctx is done.
func (s *Server) WaitAll(ctx context.Context, pred func(Job) bool) error {
	err := s.wait(ctx, func() bool {
		if len(s.order) == 0 {
			return false
		}
		for _, id := range s.order {
			if !pred(s.jobs[id].snapshot()) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("wait for all jobs: %w", err)
	}
	return nil
}

// WaitJob blocks until the job with this id satisfies pred, or ctx is
// done.
func (s *Server) WaitJob(ctx context.Context, id int64, pred func(Job) bool) (Job, error) {
	var out Job
	err := s.wait(ctx, func() bool {
		j := s.jobs[id]
		if j == nil {
			return false
		}
		out = j.snapshot()
		return pred(out)
	})
	if err != nil {
		return out, fmt.Errorf("wait for job %d: %w", id, err)
	}
	return out, nil
}

// Cancel cancels a job as a user would: pending → canceled; running →
// canceling when the runner advertised cancel_gracefully, else canceled;
// canceling → canceled.
func (s *Server) Cancel(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return fmt.Errorf("cancel job %d: no such job", id)
	}
	switch j.State {
	case StatePending, StateCanceling:
		j.State = StateCanceled
	case StateRunning:
		if j.CancelGracefully {
			j.State = StateCanceling
		} else {
			j.State = StateCanceled
		}
	default:
		return fmt.Errorf("cancel job %d: job is %s", id, j.State)
	}
	s.notifyLocked()
	return nil
}

// SimulateRun plays the inner runner of an acquired job: it appends log to
// the trace and sets the final state (success or failed; failed records
// script_failure with exit code 1).
func (s *Server) SimulateRun(id int64, log, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return fmt.Errorf("simulate job %d: no such job", id)
	}
	if !j.active() {
		return fmt.Errorf("simulate job %d: job is %s", id, j.State)
	}
	j.Trace = append(j.Trace, log...)
	j.traceSeen = true
	switch state {
	case StateSuccess:
		j.State = StateSuccess
	case StateFailed:
		j.State, j.FailureReason, j.ExitCode = StateFailed, "script_failure", 1
	default:
		return fmt.Errorf("simulate job %d: final state %q is not success or failed", id, state)
	}
	s.notifyLocked()
	return nil
}

// POST /jobs/request.
func (s *Server) requestJob(w http.ResponseWriter, r *http.Request, _ params, body []byte) {
	p := bodyParams(r, body)
	var feats struct {
		Features map[string]bool `json:"features"`
	}
	_ = json.Unmarshal(p["info"], &feats)
	tok, last := str(p, "token"), str(p, "last_update")
	deadline := time.Now().Add(s.opts.LongPoll)
	for {
		s.mu.Lock()
		rn := s.runners[tok]
		if rn == nil {
			s.mu.Unlock()
			writeJSON(w, http.StatusForbidden, msg("403 Forbidden"))
			return
		}
		rn.LastJobRequest = body
		if sid := str(p, "system_id"); sid != "" {
			rn.Managers[sid] = p["info"]
		}
		version := rn.queueVersion
		if rn.Paused || (last != "" && last == version && s.opts.LongPoll <= 0) {
			s.mu.Unlock()
			w.Header().Set("X-GitLab-Last-Update", version)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if last != "" && last == version {
			// Workhorse long polling: wait for a change or the timeout.
			ch := s.changed
			s.mu.Unlock()
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
				w.WriteHeader(http.StatusNoContent)
				return
			case <-ch:
				t.Stop()
				s.mu.Lock()
				changed := s.runners[tok] == nil || s.runners[tok].queueVersion != version
				s.mu.Unlock()
				if changed {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				continue
			}
		}
		if payload, ok := s.assignLocked(tok, feats.Features); ok {
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(payload)
			return
		}
		s.mu.Unlock()
		w.Header().Set("X-GitLab-Last-Update", version)
		w.WriteHeader(http.StatusNoContent)
		return
	}
}

// assignLocked assigns the first queued job runner tok may take and returns
// its payload: running at once, or pending until accepted when the request
// advertised two_phase_job_commit.
func (s *Server) assignLocked(tok string, features map[string]bool) ([]byte, bool) {
	for _, id := range s.order {
		j := s.jobs[id]
		if j.State != StatePending || j.RunnerToken != "" || (j.spec.RunnerToken != "" && j.spec.RunnerToken != tok) {
			continue
		}
		j.RunnerToken = tok
		j.assignment++
		j.CancelGracefully = features["cancel_gracefully"]
		j.TwoPhase = features["two_phase_job_commit"]
		if j.TwoPhase {
			s.armAcceptLocked(j)
		} else {
			j.State = StateRunning
		}
		s.notifyLocked()
		return slices.Clone(j.Payload), true
	}
	return nil, false
}

// jobByTokenLocked checks the job token of a job-token call on job id.
// It writes the error answer and returns nil when the call is refused.
func (s *Server) jobForUpdateLocked(w http.ResponseWriter, id int64, token string) *job {
	return s.jobForCallLocked(w, id, token, false)
}

// jobForCallLocked is jobForUpdateLocked; pending lets a job assigned but
// not yet accepted through (PUT of a two-phase job), and answers 409 for a
// pending job in the queue (its assignment expired or is another's).
func (s *Server) jobForCallLocked(w http.ResponseWriter, id int64, token string, pending bool) *job {
	j := s.jobs[id]
	if j == nil {
		writeJSON(w, http.StatusNotFound, msg("404 Not Found"))
		return nil
	}
	if token == "" || token != j.Token {
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden - invalid job token"))
		return nil
	}
	if pending && j.State == StatePending {
		if j.RunnerToken == "" {
			w.Header().Set("Job-Status", j.State)
			writeJSON(w, http.StatusConflict, msg("409 Conflict - job is not assigned to this runner"))
			return nil
		}
		return j
	}
	if !j.active() {
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden - Job is not processing on runner"))
		return nil
	}
	return j
}

func jobToken(r *http.Request, p map[string]json.RawMessage) string {
	if t := str(p, "token"); t != "" {
		return t
	}
	if t := r.Header.Get("JOB-TOKEN"); t != "" {
		return t
	}
	return r.URL.Query().Get("job_token")
}

// PUT /jobs/:id.
func (s *Server) updateJob(w http.ResponseWriter, r *http.Request, pp params, body []byte) {
	id, _ := strconv.ParseInt(pp["id"], 10, 64)
	p := bodyParams(r, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobForCallLocked(w, id, jobToken(r, p), true)
	if j == nil {
		return
	}
	j.Updates++
	s.notifyLocked()
	w.Header().Set("X-GitLab-Trace-Update-Interval", strconv.Itoa(s.opts.TraceUpdateInterval))
	state := str(p, "state")
	switch state {
	case StateRunning:
		if j.awaitingAccept() {
			// Two-phase accept.
			j.acceptTimer.Stop()
			j.State = StateRunning
		}
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusOK, 200)
		return
	case StatePending:
		// Two-phase keep-alive while preparing: the accept timeout
		// restarts; a job already running cannot go back.
		if !j.awaitingAccept() {
			w.Header().Set("Job-Status", j.State)
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "job is not pending"})
			return
		}
		s.armAcceptLocked(j)
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusOK, 200)
		return
	case StateSuccess, StateFailed:
	default:
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "state does not have a valid value"})
		return
	}
	if j.accepted < s.opts.FinalUpdateAccepted {
		j.accepted++
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusAccepted, 202)
		return
	}
	var out struct {
		Checksum string `json:"checksum"`
		Bytesize *int64 `json:"bytesize"`
	}
	_ = json.Unmarshal(p["output"], &out)
	if out.Checksum == "" {
		out.Checksum = str(p, "checksum")
	}
	if want := fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE(j.Trace)); out.Checksum != "" && out.Checksum != want {
		j.OutputMismatch = fmt.Sprintf("checksum %s, stored trace has %s", out.Checksum, want)
	} else if out.Bytesize != nil && *out.Bytesize != int64(len(j.Trace)) {
		j.OutputMismatch = fmt.Sprintf("bytesize %d, stored trace has %d", *out.Bytesize, len(j.Trace))
	}
	if j.acceptTimer != nil {
		j.acceptTimer.Stop()
	}
	if j.State == StateCanceling {
		j.State = StateCanceled
	} else {
		j.State = state
	}
	if state == StateFailed {
		reason := str(p, "failure_reason")
		switch {
		case reason == "":
			reason = "script_failure"
		case !coordinator.ValidFailureReason(reason):
			reason = "unknown_failure"
		}
		j.FailureReason = reason
		var code int
		if raw, ok := p["exit_code"]; ok {
			_ = json.Unmarshal(raw, &code)
		}
		j.ExitCode = code
	}
	w.Header().Set("Job-Status", j.State)
	writeJSON(w, http.StatusOK, 200)
}

// PATCH /jobs/:id/trace.
func (s *Server) patchTrace(w http.ResponseWriter, r *http.Request, pp params, body []byte) {
	id, _ := strconv.ParseInt(pp["id"], 10, 64)
	tok := r.Header.Get("JOB-TOKEN")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobForUpdateLocked(w, id, tok)
	if j == nil {
		return
	}
	cr := strings.TrimSpace(r.Header.Get("Content-Range"))
	startS, _, ok := strings.Cut(cr, "-")
	start, err := strconv.ParseInt(strings.TrimSpace(startS), 10, 64)
	if cr == "" || !ok || err != nil || start < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Content-Range is missing or invalid"})
		return
	}
	size := int64(len(j.Trace))
	if start > size {
		w.Header().Set("Range", fmt.Sprintf("0-%d", size))
		w.Header().Set("Job-Status", j.State)
		writeJSON(w, http.StatusRequestedRangeNotSatisfiable, msg("416 Range Not Satisfiable"))
		return
	}
	j.Trace = append(j.Trace[:start], body...)
	j.traceSeen = true
	s.notifyLocked()
	w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.Trace)))
	w.Header().Set("Job-Status", j.State)
	w.Header().Set("X-GitLab-Trace-Update-Interval", strconv.Itoa(s.opts.TraceUpdateInterval))
	w.WriteHeader(http.StatusAccepted)
	_, _ = fmt.Fprint(w, len(j.Trace))
}

func jobJSON(j *job) map[string]any {
	out := map[string]any{
		"id": j.ID, "name": j.spec.Name, "stage": j.spec.Stage, "status": j.State, "ref": "main", "tag": false,
		"allow_failure": false, "pipeline": map[string]any{"id": 977, "project_id": j.ProjectID, "ref": "main", "status": j.State},
		"project": map[string]any{"ci_job_token_scope_enabled": false},
	}
	if j.State == StateFailed {
		out["failure_reason"] = j.FailureReason
	}
	return out
}

// GET /job.
func (s *Server) currentJob(w http.ResponseWriter, r *http.Request, _ params, _ []byte) {
	tok := r.Header.Get("JOB-TOKEN")
	if tok == "" {
		tok = r.URL.Query().Get("job_token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if tok != "" && j.Token == tok && (j.active() || j.awaitingAccept()) {
			writeJSON(w, http.StatusOK, jobJSON(j))
			return
		}
	}
	writeJSON(w, http.StatusUnauthorized, msg("401 Unauthorized"))
}
