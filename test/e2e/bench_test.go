package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/state"
)

// benchRow is one line of the process-level benchmark table.
type benchRow struct{ metric, value, target string }

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// TestProcessBench is the process-level benchmark of `make bench`: the real
// binary against gitlabfake and clevertest over loopback. It only runs with
// PAAS_BENCH=1 and prints a table; it asserts correctness (every job
// succeeds, nothing leaks), never speed.
//
// Sizes: PAAS_BENCH_JOBS (default 500) jobs drained with up to
// PAAS_BENCH_INFLIGHT (default 100) in flight, PAAS_BENCH_LATENCY (default
// 0) added to every PaaS API call; then PAAS_BENCH_RUNNING (default 100)
// jobs kept running, PAAS_BENCH_WARMUP (default 60s) then
// PAAS_BENCH_STEADY (default 60s) during which the coordinator requests per
// running job per minute are counted.
func TestProcessBench(t *testing.T) {
	if os.Getenv("PAAS_BENCH") != "1" {
		t.Skip("process-level benchmark: run with PAAS_BENCH=1 (make bench)")
	}
	jobs := envInt("PAAS_BENCH_JOBS", 500)
	inFlight := envInt("PAAS_BENCH_INFLIGHT", 100)
	latency := envDuration("PAAS_BENCH_LATENCY", 0)
	running := envInt("PAAS_BENCH_RUNNING", 100)
	steady := envDuration("PAAS_BENCH_STEADY", time.Minute)
	warmup := envDuration("PAAS_BENCH_WARMUP", time.Minute)
	var rows []benchRow
	add := func(metric, target, format string, args ...any) {
		rows = append(rows, benchRow{metric, fmt.Sprintf(format, args...), target})
	}

	// Phase 1: drain.
	w := newWorld(t)
	s := defaultSettings()
	s.concurrent, s.provisioning, s.quotaJobs = inFlight, inFlight, 10*inFlight
	s.checkInterval, s.progressPoll, s.reconcile = 0.01, 0.5, 60
	w.writeConfig(t, strings.Replace(w.configTOML(s), `log_level = "debug"`, `log_level = "info"`, 1))
	if latency > 0 {
		w.ccFaults.set(0, 0, 0, 0, latency)
	}
	ids := w.enqueue(jobs, runnerToken)
	start := time.Now()
	p := w.start(t)
	peak := int64(0)
	require.True(t, waitFor(t.Context(), 10*time.Minute, func() bool {
		peak = max(peak, vmHWM(p.cmd.Process.Pid))
		return w.allFinal(ids) && len(w.cc.Live()) == 0
	}), "drain did not finish")
	drain := time.Since(start)
	glRequests := w.gl.TotalRequests()
	w.mu.Lock()
	ccRequests, pushes := w.ccRequests, w.pushes
	var lat []time.Duration
	for id, acq := range w.acquiredAt {
		if c, ok := w.createdAt[id]; ok {
			lat = append(lat, c.Sub(acq))
		}
	}
	w.mu.Unlock()
	peak = max(peak, vmHWM(p.cmd.Process.Pid))
	p.signal(t, syscall.SIGTERM)
	require.True(t, p.wait(time.Minute))
	require.True(t, p.cmd.ProcessState.Success(), "exit status: %v", p.err)
	cpu, maxRSS := p.rusage()
	r := w.outcome(t, "bench", ids)
	require.Equal(t, jobs, r.succeeded)
	r.requirePass(t)
	slices.Sort(lat)
	add("jobs drained", "", "%d in %s, up to %d in flight, PaaS latency %s", jobs, drain.Round(time.Millisecond), inFlight, latency)
	add("drain rate", "far above thread-per-job", "%.1f jobs/s", float64(jobs)/drain.Seconds())
	add("CPU per job (runner process, user+sys)", "", "%.2f ms", float64(cpu.Microseconds())/1000/float64(jobs))
	add("peak RSS (runner process)", "", "%.1f MiB (VmHWM %.1f MiB)", float64(maxRSS)/1024, float64(peak)/1024)
	add("coordinator requests per job (drain)", "", "%.2f", float64(glRequests)/float64(jobs))
	add("PaaS API requests per job (drain)", "", "%.2f (+ %.2f git pushes)", float64(ccRequests)/float64(jobs), float64(pushes)/float64(jobs))
	add("launch latency acquired → create-app p50", "", "%s", percentile(lat, 50).Round(10*time.Microsecond))
	add(fmt.Sprintf("launch latency acquired → create-app p99 (%d in flight)", inFlight), "< 10 ms", "%s", percentile(lat, 99).Round(10*time.Microsecond))

	// Phase 2: coordinator requests per running job per minute, with the
	// default intervals except check_interval (to acquire quickly).
	rows = append(rows, steadyState(t, running, warmup, steady)...)

	// Phase 3: state checkpoint and restore at 10k jobs, the state
	// store's heap for them, and the intent Sync a launch waits for.
	rows = append(rows, stateAt10k(t)...)
	rows = append(rows, intentSync(t, inFlight))

	var b strings.Builder
	b.WriteString("\n| metric | value | target |\n|---|---|---|\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", row.metric, row.value, row.target)
	}
	fmt.Fprint(os.Stdout, b.String())
}

// steadyState keeps n jobs running and, after warmup (the finish checks
// back off from check_interval to job_progress_poll_interval), counts the
// coordinator and PaaS requests the runner makes during d.
func steadyState(t *testing.T, n int, warmup, d time.Duration) []benchRow {
	t.Helper()
	w := newWorld(t)
	w.setRunFor(func(int64) time.Duration { return time.Hour })
	s := defaultSettings()
	s.concurrent, s.provisioning, s.quotaJobs = n, n, 10*n
	s.checkInterval, s.progressPoll, s.reconcile = 0.05, 30, 300
	w.writeConfig(t, strings.Replace(w.configTOML(s), `log_level = "debug"`, `log_level = "info"`, 1))
	ids := w.enqueue(n, runnerToken)
	p := w.start(t)
	require.True(t, waitFor(t.Context(), 5*time.Minute, func() bool { return w.pushCount() >= n }), "jobs did not start")
	wait(t.Context(), warmup)
	before := w.gl.Counts()
	w.mu.Lock()
	ccBefore := w.ccRequests
	w.mu.Unlock()
	wait(t.Context(), d) // the measured window itself
	after := w.gl.Counts()
	w.mu.Lock()
	ccDelta := w.ccRequests - ccBefore
	w.mu.Unlock()
	perJob, polls := 0, 0
	var detail []string
	for k, v := range after {
		delta := v - before[k]
		if delta == 0 || strings.HasPrefix(k, "/") {
			continue // counters by template only; keep the method+template ones
		}
		if strings.Contains(k, "/jobs/request") {
			polls += delta
		} else {
			perJob += delta
		}
		detail = append(detail, fmt.Sprintf("%s %d", k, delta))
	}
	slices.Sort(detail)
	minutes := d.Minutes()
	for _, id := range ids {
		_ = w.gl.SimulateRun(id, "done\n", "success")
	}
	require.True(t, waitFor(t.Context(), 5*time.Minute, func() bool { return w.allFinal(ids) && len(w.cc.Live()) == 0 }))
	p.signal(t, syscall.SIGTERM)
	require.True(t, p.wait(time.Minute))
	coordRow := benchRow{
		metric: fmt.Sprintf("coordinator requests per running job per minute (%d running, %s window after %s warm-up, job_progress_poll_interval 30)", n, d, warmup),
		value:  fmt.Sprintf("%.2f (%s; plus %.1f job polls/min for the whole runner)", float64(perJob)/float64(n)/minutes, strings.Join(detail, ", "), float64(polls)/minutes),
		target: "≤ 2",
	}
	return []benchRow{
		coordRow,
		{"PaaS API requests per running job per minute (same window)", fmt.Sprintf("%.2f", float64(ccDelta)/float64(n)/minutes), ""},
	}
}

// vmHWM returns the peak RSS of a process in KiB (0 when unknown).
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib
		}
	}
	return 0
}

// stateAt10k times a checkpoint and a restore of 10,000 tracked jobs with
// the real state store, and measures the heap they take.
func stateAt10k(t *testing.T) []benchRow {
	t.Helper()
	const n = 10_000
	log := logrus.New()
	log.SetOutput(discardWriter{})
	path := filepath.Join(t.TempDir(), "state.json")
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	st, err := state.Open(path, log)
	require.NoError(t, err)
	for i := range int64(n) {
		st.Put(state.Job{
			Runner: "3fa9c2d17b04", JobID: i, Token: fmt.Sprintf("glcbt-64_%020d", i), ProjectID: 42, Flavor: "M",
			ExpectedWeight: 2.378414230005442, Weight: 2.378414230005442, Phase: state.PhaseRunning,
			ResourceName: fmt.Sprintf("hpd-job-3fa9c2d17b04-%d", i),
			Resource:     json.RawMessage(fmt.Sprintf(`{"id":"app_%08d-0000-4000-8000-000000000000","orga":"orga_x","weight":2.378414230005442,"launched":true}`, i)),
			AcquiredAt:   time.Now().UTC(),
		})
	}
	start := time.Now()
	require.NoError(t, st.Sync(t.Context()))
	checkpoint := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	require.NoError(t, st.Close(context.WithoutCancel(t.Context())))
	info, err := os.Stat(path)
	require.NoError(t, err)
	start = time.Now()
	st2, err := state.Open(path, log)
	require.NoError(t, err)
	f, err := st2.Load()
	require.NoError(t, err)
	restore := time.Since(start)
	require.Len(t, f.Jobs, n)
	require.NoError(t, st2.Close(context.WithoutCancel(t.Context())))
	return []benchRow{
		{"state checkpoint, 10k tracked jobs (Put ×10k + Sync, fsync included)", checkpoint.Round(10 * time.Microsecond).String(), "< 50 ms"},
		{"state restore, 10k tracked jobs (Open + Load)", restore.Round(10 * time.Microsecond).String(), "< 1 s"},
		{"state file size / store heap, 10k tracked jobs", fmt.Sprintf("%.1f MiB / %.1f MiB", float64(info.Size())/(1<<20), float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/(1<<20)), ""},
	}
}

// intentSync times what a launch waits for before its first PaaS call:
// Put of a newly acquired job (payload of 4 KiB) then Sync, with n jobs
// still provisioning (payloads kept) in the same store.
func intentSync(t *testing.T, n int) benchRow {
	t.Helper()
	log := logrus.New()
	log.SetOutput(discardWriter{})
	st, err := state.Open(filepath.Join(t.TempDir(), "state.json"), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.WithoutCancel(t.Context())) })
	payload := json.RawMessage(`{"id":1,"token":"x","filler":"` + strings.Repeat("a", 4096) + `"}`)
	job := func(i int64) state.Job {
		return state.Job{
			Runner: "3fa9c2d17b04", JobID: i, Token: "glcbt-64_x", ExpectedWeight: 1, Phase: state.PhasePending,
			ResourceName: fmt.Sprintf("hpd-job-3fa9c2d17b04-%d", i), Payload: payload, AcquiredAt: time.Now().UTC(),
		}
	}
	for i := range int64(n) {
		st.Put(job(i))
	}
	require.NoError(t, st.Sync(t.Context()))
	const rounds = 200
	lat := make([]time.Duration, 0, rounds)
	for i := range int64(rounds) {
		start := time.Now()
		st.Put(job(int64(n) + i))
		require.NoError(t, st.Sync(t.Context()))
		lat = append(lat, time.Since(start))
		st.Delete(state.Key{Runner: "3fa9c2d17b04", JobID: int64(n) + i})
	}
	slices.Sort(lat)
	return benchRow{
		metric: fmt.Sprintf("intent Put+Sync before the first PaaS call (%d jobs provisioning, 4 KiB payloads)", n),
		value:  fmt.Sprintf("p50 %s, p99 %s", percentile(lat, 50).Round(10*time.Microsecond), percentile(lat, 99).Round(10*time.Microsecond)),
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
