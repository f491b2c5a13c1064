package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
	"gitlab.com/paas-runner/paas-runner/state"
)

const (
	orga        = "orga_e2e00000-0000-4000-8000-000000000001"
	cleverToken = "ccE2EToken-7c1f0a9b33d2"
	runnerToken = "glrt-E2ERunnerSecret-41c9e0"
	secondToken = "glrt-E2ESecondRunner-77ab12"
)

// envInt reads a positive integer from the environment, or returns def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// envDuration reads a duration from the environment, or returns def.
func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// faults is an HTTP middleware injecting errors, "timeouts" (the request is
// held, then the connection is dropped without an answer) and latency, and
// recording when each request arrived.
type faults struct {
	next http.Handler

	mu          sync.Mutex
	rng         *rand.Rand
	errRate     float64
	status      int
	timeoutRate float64
	hold        time.Duration
	latency     time.Duration
	injected    int
	total       int
	// observe is called with every request that was let through, its
	// arrival time, status and response body.
	observe func(req *http.Request, reqBody []byte, at time.Time, status int, body []byte)
	// arrive is called when a request arrives, before any fault.
	arrive func(req *http.Request)
}

func newFaults(next http.Handler, seed uint64) *faults {
	return &faults{next: next, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), status: http.StatusInternalServerError}
}

// set changes the fault parameters.
func (f *faults) set(errRate float64, status int, timeoutRate float64, hold, latency time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errRate, f.status, f.timeoutRate, f.hold, f.latency = errRate, status, timeoutRate, hold, latency
}

// counts returns how many requests arrived and how many were faulted.
func (f *faults) counts() (total, injected int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total, f.injected
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len() < 1<<16 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if fl, ok := r.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (f *faults) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	f.mu.Lock()
	f.total++
	p := f.rng.Float64()
	errRate, status, timeoutRate, hold, latency := f.errRate, f.status, f.timeoutRate, f.hold, f.latency
	faulted := p < errRate+timeoutRate
	if faulted {
		f.injected++
	}
	observe, arrive := f.observe, f.arrive
	f.mu.Unlock()
	if arrive != nil {
		arrive(req)
	}
	if latency > 0 && !wait(req.Context(), latency) {
		return
	}
	switch {
	case p < timeoutRate:
		wait(req.Context(), hold)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case p < timeoutRate+errRate:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"id":500,"message":"injected fault","type":"error"}`)
		return
	}
	var reqBody []byte
	if observe != nil && req.Body != nil && req.Method != http.MethodGet {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	rec := &recorder{ResponseWriter: w}
	f.next.ServeHTTP(rec, req)
	if observe != nil {
		observe(req, reqBody, at, rec.status, rec.body.Bytes())
	}
}

// wait waits d or until ctx is done; it reports whether d elapsed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// world is the outside of the runner: gitlabfake and clevertest, each
// behind a fault injector, and what the test observed of them.
type world struct {
	gl       *gitlabfake.Server
	glURL    string
	glFaults *faults
	cc       *clevertest.Server
	ccAPI    string
	ccFaults *faults
	dir      string

	// runFor, when set, tells how long the inner runner keeps a job
	// running after its push before it succeeds (default: at once).
	runFor func(jobID int64) time.Duration

	mu         sync.Mutex
	acquiredAt map[int64]time.Time
	createdAt  map[int64]time.Time
	// createArrivals counts POST …/applications as they arrive.
	createArrivals int
	// createGate, when set, holds every application creation until it is
	// closed.
	createGate chan struct{}
	ccRequests int
	pushes     int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{dir: t.TempDir(), acquiredAt: map[int64]time.Time{}, createdAt: map[int64]time.Time{}}

	// gitlabfake behind the fault injector, on a listener whose URL is
	// known before the fake is built (payload URLs use it).
	glSrv := httptest.NewUnstartedServer(nil)
	w.glURL = "http://" + glSrv.Listener.Addr().String()
	// Two-phase job commit: a job acquired by a runner killed before its
	// accept goes back to the queue after AcceptTimeout and is acquired
	// again after the restart.
	w.gl = gitlabfake.New(gitlabfake.Options{ExternalURL: w.glURL, TraceUpdateInterval: -1, Seed: 12, AcceptTimeout: acceptTimeout})
	w.gl.AddRunner(runnerToken)
	w.glFaults = newFaults(w.gl, 1)
	w.glFaults.observe = w.observeGitLab
	glSrv.Config.Handler = w.glFaults
	glSrv.Start()
	t.Cleanup(glSrv.Close)

	w.cc = clevertest.New(t)
	w.cc.AddOrga(orga, cleverToken)
	target, err := url.Parse(w.cc.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	w.ccFaults = newFaults(proxy, 2)
	w.ccFaults.observe = w.observeClever
	w.ccFaults.arrive = func(req *http.Request) {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/applications") {
			w.mu.Lock()
			w.createArrivals++
			gate := w.createGate
			w.mu.Unlock()
			if gate != nil {
				select {
				case <-gate:
				case <-req.Context().Done():
				}
			}
		}
	}
	ccSrv := httptest.NewServer(w.ccFaults)
	t.Cleanup(ccSrv.Close)
	w.ccAPI = ccSrv.URL + strings.TrimPrefix(w.cc.APIURL(), w.cc.URL)

	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// The inner runner: a pushed application runs its job, which succeeds.
	w.cc.OnPush(func(_, name string) {
		id, ok := jobIDOf(name)
		if !ok {
			return
		}
		w.mu.Lock()
		w.pushes++
		runFor := w.runFor
		w.mu.Unlock()
		d := time.Duration(0)
		if runFor != nil {
			d = runFor(id)
		}
		if d == 0 {
			_ = w.gl.SimulateRun(id, "Running on fake Clever Cloud\n", gitlabfake.StateSuccess)
			return
		}
		wg.Go(func() {
			if wait(ctx, d) {
				_ = w.gl.SimulateRun(id, "Running on fake Clever Cloud\n", gitlabfake.StateSuccess)
			}
		})
	})
	return w
}

// appOf returns the last application created for a job, or nil.
func (w *world) appOf(jobID int64) *clevertest.App {
	var found *clevertest.App
	for _, app := range w.cc.Apps() {
		if id, ok := jobIDOf(app.Name); ok && id == jobID {
			found = &app
		}
	}
	return found
}

// jobIDOf returns the job id ending a resource name.
func jobIDOf(name string) (int64, bool) {
	id, err := strconv.ParseInt(name[strings.LastIndexByte(name, '-')+1:], 10, 64)
	return id, err == nil
}

func (w *world) observeGitLab(req *http.Request, _ []byte, _ time.Time, status int, body []byte) {
	// Acquired = when the 201 has been written.
	at := time.Now()
	if status != http.StatusCreated || !strings.HasSuffix(req.URL.Path, "/jobs/request") {
		return
	}
	var job struct {
		ID int64 `json:"id"`
	}
	if json.Unmarshal(body, &job) == nil && job.ID > 0 {
		w.mu.Lock()
		if _, ok := w.acquiredAt[job.ID]; !ok {
			w.acquiredAt[job.ID] = at
		}
		w.mu.Unlock()
	}
}

func (w *world) observeClever(req *http.Request, reqBody []byte, at time.Time, _ int, _ []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ccRequests++
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/applications") {
		return
	}
	var app struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(reqBody, &app) != nil {
		return
	}
	if id, ok := jobIDOf(app.Name); ok {
		if _, seen := w.createdAt[id]; !seen {
			w.createdAt[id] = at
		}
	}
}

// setRunFor changes how long the inner runner keeps jobs running.
func (w *world) setRunFor(f func(jobID int64) time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runFor = f
}

// holdCreates holds application creations until the returned function is
// called.
func (w *world) holdCreates() (release func()) {
	gate := make(chan struct{})
	w.mu.Lock()
	w.createGate = gate
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			w.createGate = nil
			w.mu.Unlock()
			close(gate)
		})
	}
}

// creates returns how many application creations arrived so far.
func (w *world) creates() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.createArrivals
}

// acquired returns how many jobs the runners acquired so far.
func (w *world) acquired() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acquiredAt)
}

// pushCount returns how many successful pushes the inner runner saw.
func (w *world) pushCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pushes
}

// enqueue adds n jobs for the runner and returns their ids.
func (w *world) enqueue(n int, token string) []int64 {
	ids := make([]int64, 0, n)
	for range n {
		ids = append(ids, w.gl.Enqueue(gitlabfake.JobSpec{RunnerToken: token}).ID)
	}
	return ids
}

// settings are the knobs of the runner's configuration file.
type settings struct {
	concurrent      int
	provisioning    int
	checkInterval   float64
	progressPoll    float64
	shutdownTimeout float64
	reconcile       float64
	repoWaitStep    float64
	quotaJobs       int
	secondRunner    bool
}

func defaultSettings() settings {
	return settings{
		concurrent: 20, provisioning: 10, checkInterval: 0.02, progressPoll: 0.25,
		shutdownTimeout: 20, reconcile: 1, repoWaitStep: 0.01, quotaJobs: 40,
	}
}

// configTOML renders a clever-docker configuration for the world.
func (w *world) configTOML(s settings) string {
	var b strings.Builder
	fmt.Fprintf(&b, `concurrent = %d
check_interval = %g
job_progress_poll_interval = %g
log_level = "debug"
shutdown_timeout = %g
state_file = %q
reconcile_interval = %g
paas_max_concurrent_provisioning = %d
paas_log_statistics = false

[quota_computation]
  reference_runner = "e2e"
  reference_flavor = "M"
  reference_jobs_count = %d
`, s.concurrent, s.checkInterval, s.progressPoll, s.shutdownTimeout, w.statePath(), s.reconcile, s.provisioning, s.quotaJobs)
	runner := func(name, token string) {
		fmt.Fprintf(&b, `
[[runners]]
  name = %q
  url = %q
  token = %q
  executor = "clever-docker"
  cc_api_url = %q
  cc_orga_id = %q
  cc_token = %q
  cc_deployment_repo_timeout = 20
  cc_deployment_repo_wait_step = %g
  [runners.cc_extra_env]
    CC_ENABLE_HEPTAPOD_RUNNER = "true"
`, name, w.glURL, token, w.ccAPI, orga, cleverToken, s.repoWaitStep)
	}
	runner("e2e", runnerToken)
	if s.secondRunner {
		runner("e2e-second", secondToken)
	}
	return b.String()
}

func (w *world) configPath() string { return filepath.Join(w.dir, "config.toml") }
func (w *world) statePath() string  { return filepath.Join(w.dir, "state.json") }
func (w *world) logPath() string    { return filepath.Join(w.dir, "runner.log") }

func (w *world) writeConfig(t *testing.T, content string) {
	t.Helper()
	tmp := w.configPath() + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, w.configPath()))
}

// readyLine is logged by the dispatcher once it runs (after the signal
// handlers are installed).
const readyLine = "runner configured"

// process is one run of the paas-runner binary.
type process struct {
	cmd     *exec.Cmd
	logPath string
	// logOffset is the size of the log when the process started.
	logOffset int
	done      chan struct{}
	err       error
}

// start runs `paas-runner run CONFIG`, appending its output to the log.
func (w *world) start(t *testing.T) *process {
	t.Helper()
	logf, err := os.OpenFile(w.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	info, err := logf.Stat()
	require.NoError(t, err)
	offset := int(info.Size())
	cmd := exec.Command(binary, "run", w.configPath())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	require.NoError(t, cmd.Start())
	_ = logf.Close()
	p := &process{cmd: cmd, logPath: w.logPath(), logOffset: offset, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitReady waits until the process has logged that its dispatcher runs:
// it has restored its state and handles signals (a SIGTERM before that
// kills it).
func (w *world) waitReady(t *testing.T, p *process) {
	t.Helper()
	ok := waitFor(t.Context(), time.Minute, func() bool {
		logs := w.logText(t)
		return p.exited() || (len(logs) > p.logOffset && strings.Contains(logs[p.logOffset:], readyLine))
	})
	if !ok || p.exited() {
		t.Fatalf("the runner did not get ready (exited: %v, %v); last output:\n%s", p.exited(), p.err, p.tail(20))
	}
}

// signal sends sig to the process, which must still run.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if p.exited() {
		t.Fatalf("the runner exited unexpectedly (%v); last output:\n%s", p.err, p.tail(20))
	}
	require.NoError(t, p.cmd.Process.Signal(sig))
}

// tail returns the last n lines the runners wrote.
func (p *process) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// wait waits for the process to exit within d; it reports whether it did.
func (p *process) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// rusage returns the CPU time and peak RSS of an exited process.
func (p *process) rusage() (cpu time.Duration, maxRSSKiB int64) {
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Maxrss
}

// logText returns everything the runner processes wrote.
func (w *world) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(w.logPath())
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

// linesAbout returns the runner's log lines mentioning a job id, and the
// lines that tell when a runner process started.
func (w *world) linesAbout(t *testing.T, id int64) string {
	t.Helper()
	var b strings.Builder
	idStr := strconv.FormatInt(id, 10)
	for line := range strings.SplitSeq(w.logText(t), "\n") {
		if strings.Contains(line, idStr) || strings.Contains(line, "starting") || strings.Contains(line, "restor") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// trackedJobs returns how many jobs the state file still tracks.
func (w *world) trackedJobs(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(w.statePath())
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	f, _, err := state.Decode(data, nil)
	require.NoError(t, err)
	return len(f.Jobs)
}

// final reports whether a job is in a final state.
func final(j gitlabfake.Job) bool {
	return j.State == gitlabfake.StateSuccess || j.State == gitlabfake.StateFailed || j.State == gitlabfake.StateCanceled
}

// waitFor polls cond every 20ms until it holds or d elapses.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// allFinal reports whether every job of ids is final.
func (w *world) allFinal(ids []int64) bool {
	for _, id := range ids {
		if j, ok := w.gl.Job(id); !ok || !final(j) {
			return false
		}
	}
	return true
}

// report is one row of a resilience table.
type report struct {
	scenario  string
	jobs      int
	succeeded int
	failed    int // failed with a reason
	hanging   int // not final, or failed without a reason
	leaked    int // applications not deleted
	tracked   int // jobs still in the state file
	secrets   int // secret occurrences in the runner's output
	// requeued counts jobs the coordinator put back in its queue because
	// their two-phase accept did not come within its accept timeout (a
	// SIGKILL between the acquisition and the accept, or an accept slowed
	// by injected faults); they were acquired again and are counted by
	// their final state.
	requeued int
	// duplicates counts jobs that had more than one application.
	duplicates int
	// reasons lists the failure reasons, "reason×count".
	reasons []string
	extra   string
}

// outcome fills a report from the fakes' and the state file's contents.
func (w *world) outcome(t *testing.T, scenario string, ids []int64) report {
	t.Helper()
	r := report{scenario: scenario, jobs: len(ids)}
	for _, id := range ids {
		j, _ := w.gl.Job(id)
		r.requeued += min(j.Requeued, 1)
		switch {
		case j.State == gitlabfake.StateSuccess:
			r.succeeded++
		case j.State == gitlabfake.StateFailed && j.FailureReason != "":
			r.failed++
		default:
			r.hanging++
			t.Logf("%s: job %d hanging: state %q reason %q; runner log lines about it:\n%s",
				scenario, id, j.State, j.FailureReason, w.linesAbout(t, id))
		}
	}
	reasons := map[string]int{}
	for _, id := range ids {
		if j, _ := w.gl.Job(id); j.State == gitlabfake.StateFailed && j.FailureReason != "" {
			reasons[j.FailureReason]++
		}
	}
	for reason, n := range reasons {
		r.reasons = append(r.reasons, fmt.Sprintf("%s×%d", reason, n))
	}
	slices.Sort(r.reasons)
	appsPerJob := map[int64]int{}
	for _, app := range w.cc.Apps() {
		if id, ok := jobIDOf(app.Name); ok {
			appsPerJob[id]++
		}
	}
	for id, n := range appsPerJob {
		if n > 1 {
			r.duplicates++
			t.Logf("%s: job %d had %d applications", scenario, id, n)
		}
	}
	r.leaked = len(w.cc.Live())
	r.tracked = w.trackedJobs(t)
	secrets := []string{runnerToken, secondToken, cleverToken}
	for _, j := range w.gl.Jobs() {
		secrets = append(secrets, j.Token)
	}
	logs := w.logText(t)
	for _, s := range secrets {
		if n := strings.Count(logs, s); n > 0 {
			r.secrets += n
			t.Logf("%s: a secret (%d chars) appears %d times in the runner output", scenario, len(s), n)
		}
	}
	return r
}

// requirePass checks the pass criteria of a resilience scenario.
func (r report) requirePass(t *testing.T) {
	t.Helper()
	require.Zero(t, r.hanging, "%s: hanging jobs", r.scenario)
	require.Zero(t, r.leaked, "%s: leaked applications", r.scenario)
	require.Zero(t, r.tracked, "%s: jobs left in the state file", r.scenario)
	require.Zero(t, r.secrets, "%s: secrets in logs", r.scenario)
	require.Equal(t, r.jobs, r.succeeded+r.failed, "%s: jobs accounted for", r.scenario)
}

// printTable prints resilience rows as a Markdown table.
func printTable(t *testing.T, rows []report) {
	t.Helper()
	var b strings.Builder
	b.WriteString("\n| scenario | jobs | succeeded | failed with reason | re-queued (accept not in time) | hanging or lost | resources leaked | still tracked | secrets in logs | notes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		if r.scenario == "" {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n",
			r.scenario, r.jobs, r.succeeded, r.failed, r.requeued, r.hanging, r.leaked, r.tracked, r.secrets, r.extra)
	}
	fmt.Fprint(os.Stdout, b.String())
}
