package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/internal/testlog"
	"gitlab.com/paas-runner/paas-runner/internal/testwait"
	"gitlab.com/paas-runner/paas-runner/metrics"
	"gitlab.com/paas-runner/paas-runner/quota"
)

const jobsTestRunnerToken = "glrt-jobs-cli-test-runner-token-abcdef"

// runningDaemon is `paas-runner run CONFIG` in a goroutine, with a fake
// executor against gitlabfake; launched jobs are held until released.
type runningDaemon struct {
	gl       *gitlabfake.Server
	cfgPath  string
	addr     string
	launched chan int64
}

func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func startRunCommand(t *testing.T, listen bool) *runningDaemon {
	t.Helper()
	config.AllowFakeExecutor = true
	t.Cleanup(func() { config.AllowFakeExecutor = false })
	rd := &runningDaemon{launched: make(chan int64, 100)}
	executors.Register(config.ExecutorFake, executortest.Factory(executortest.NewCloud(), executortest.Options{
		OnLaunch: func(spec executors.JobSpec) { rd.launched <- spec.Job.ID },
	}))
	t.Cleanup(func() {
		executors.Register(config.ExecutorFake, executortest.Factory(executortest.DefaultCloud(), executortest.Options{}))
	})
	rd.gl = gitlabfake.New(gitlabfake.Options{Seed: 3}).Start()
	t.Cleanup(rd.gl.Close)
	rd.gl.AddRunner(jobsTestRunnerToken)

	dir := t.TempDir()
	rd.cfgPath = filepath.Join(dir, "config.toml")
	listenLine := ""
	if listen {
		rd.addr = freeAddr(t)
		listenLine = fmt.Sprintf("listen_address = %q\n", rd.addr)
	}
	cfgText := listenLine + `concurrent = 10
check_interval = 0.05
job_progress_poll_interval = 0.05
log_level = "warn"
state_file = "` + filepath.Join(dir, "state.json") + `"

[quota_computation]
  reference_runner = "cli"
  reference_flavor = "XL"
  reference_jobs_count = 3

[[runners]]
  name = "cli"
  url = "` + rd.gl.URL() + `"
  token = "` + jobsTestRunnerToken + `"
  executor = "fake"
  local_default_flavor = "M"
  [runners.local_flavors]
    S = { memory_mib = 1024, cpus = 1 }
    M = { memory_mib = 2048, cpus = 1 }
    XL = { memory_mib = 8192, cpus = 4 }
`
	require.NoError(t, os.WriteFile(rd.cfgPath, []byte(cfgText), 0o600))
	if !listen {
		return rd
	}

	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	errOut := &testlog.Buffer{}
	go func() {
		app := newApp()
		app.Writer, app.ErrWriter = errOut, errOut
		app.ExitErrHandler = func(*cli.Context, error) {}
		done <- app.RunContext(ctx, []string{"paas-runner", "run", rd.cfgPath})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, errOut.String())
		case <-time.After(20 * time.Second):
			t.Error("paas-runner run did not stop")
		}
		log.SetOutput(os.Stderr)
	})
	require.Eventually(t, func() bool {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+rd.addr+"/readyz", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 10*time.Millisecond, "daemon never ready")
	return rd
}

func (rd *runningDaemon) enqueue(flavor string) int64 {
	spec := gitlabfake.JobSpec{RunnerToken: jobsTestRunnerToken}
	if flavor != "" {
		spec.Variables = map[string]string{quota.FlavorVariable: flavor}
	}
	return rd.gl.Enqueue(spec).ID
}

func (rd *runningDaemon) waitLaunched(t *testing.T, n int) []int64 {
	t.Helper()
	return testwait.Receive(t, rd.launched, n, 20*time.Second, "jobs launched")
}

func exitCodeOf(err error) int {
	if ec, ok := errors.AsType[cli.ExitCoder](err); ok {
		return ec.ExitCode()
	}
	return -1
}

func TestJobsAgainstRunningDaemon(t *testing.T) {
	rd := startRunCommand(t, true)
	flavors := []string{"S", "XL", ""}
	var ids []int64
	for _, f := range flavors {
		ids = append(ids, rd.enqueue(f))
	}
	require.ElementsMatch(t, ids, rd.waitLaunched(t, len(ids)))

	// The table lists every in-flight job, whichever way the address is
	// given.
	var table string
	require.Eventually(t, func() bool {
		out, err := runCLI(t, "jobs", "list", "--address", rd.addr)
		require.NoError(t, err)
		table = out
		return strings.Count(out, " running ") == len(ids)
	}, 20*time.Second, 10*time.Millisecond, "jobs never all running")
	t.Log("jobs list:\n" + table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	require.Len(t, lines, 1+len(ids))
	for _, col := range []string{"JOB ID", "RUNNER", "FLAVOR", "WEIGHT", "PHASE", "RESOURCE ID", "ACQUIRED", "STARTED", "FINISHED"} {
		require.Contains(t, lines[0], col)
	}
	for i, id := range ids {
		row := lines[1+i]
		require.True(t, strings.HasPrefix(row, fmt.Sprint(id)+" "), row)
		require.Contains(t, row, " cli ")
		wantFlavor := flavors[i]
		if wantFlavor == "" {
			wantFlavor = "default"
		}
		require.Contains(t, row, " "+wantFlavor+" ")
	}
	fromConfig, err := runCLI(t, "jobs", "list", "--config", rd.cfgPath)
	require.NoError(t, err)
	require.Equal(t, strings.Count(table, "\n"), strings.Count(fromConfig, "\n"))

	// --json parses and matches.
	out, err := runCLI(t, "jobs", "list", "--json", "--address", "http://"+rd.addr)
	require.NoError(t, err)
	var list metrics.JobList
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Jobs, len(ids))
	for i, j := range list.Jobs {
		require.Equal(t, ids[i], j.JobID)
		require.Equal(t, "running", j.Phase)
		require.Positive(t, j.Weight)
		require.NotEmpty(t, j.ResourceID)
		require.NotNil(t, j.AcquiredAt)
	}
	texts := []string{table, out}

	// inspect: detail, JSON, unknown job.
	detail, err := runCLI(t, "jobs", "inspect", "--address", rd.addr, fmt.Sprintf("cli/%d", ids[1]))
	require.NoError(t, err)
	require.Contains(t, detail, fmt.Sprintf("Job ID:                 %d", ids[1]))
	t.Log("jobs inspect:\n" + detail)
	require.Contains(t, detail, "XL")
	require.Contains(t, detail, list.Jobs[1].ResourceID)
	byID, err := runCLI(t, "jobs", "inspect", "--json", "--config", rd.cfgPath, fmt.Sprintf("%s/%d", list.Jobs[1].RunnerID, ids[1]))
	require.NoError(t, err)
	var one metrics.Job
	require.NoError(t, json.Unmarshal([]byte(byID), &one))
	require.Equal(t, list.Jobs[1], one)
	missing, err := runCLI(t, "jobs", "inspect", "--address", rd.addr, "cli/999999")
	require.Error(t, err)
	require.Equal(t, 1, exitCodeOf(err))
	require.Contains(t, err.Error(), "no tracked job 999999")
	texts = append(texts, detail, byID, missing)

	// SIGUSR1 logs the redacted dump with the counters.
	logs := &testlog.Buffer{}
	log.SetOutput(logs)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "dump of tracked jobs and counters") },
		10*time.Second, 5*time.Millisecond, "no SIGUSR1 dump")
	dumpLine := logs.String()
	require.Contains(t, dumpLine, "paas_runner_job_acquisitions_total")
	require.Contains(t, dumpLine, fmt.Sprint(ids[0]))
	texts = append(texts, dumpLine)

	// Metrics are served by `run` too, Go collector included.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+rd.addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Contains(t, body.String(), `paas_runner_job_launches_total{runner="cli"} 3`)
	require.Contains(t, body.String(), "go_goroutines")
	require.Contains(t, body.String(), `paas_runner_api_requests_total{api="coordinator"`)
	texts = append(texts, body.String())

	// Once the jobs are over, the list empties.
	for _, id := range ids {
		require.NoError(t, rd.gl.SimulateRun(id, "done\n", gitlabfake.StateSuccess))
	}
	require.Eventually(t, func() bool {
		out, err := runCLI(t, "jobs", "list", "--address", rd.addr)
		require.NoError(t, err)
		return strings.TrimSpace(out) == "no tracked jobs"
	}, 20*time.Second, 10*time.Millisecond)

	secrets := []string{jobsTestRunnerToken}
	for _, id := range ids {
		j, _ := rd.gl.Job(id)
		require.NotEmpty(t, j.Token)
		secrets = append(secrets, j.Token)
	}
	for _, text := range texts {
		for _, s := range secrets {
			require.NotContains(t, text, s)
		}
	}
}

func TestJobsUsageAndAddressErrors(t *testing.T) {
	noListen := startRunCommand(t, false)
	cases := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{name: "no address nor config", args: []string{"list"}, code: 2, contains: "give --address"},
		{name: "config without listen_address", args: []string{"list", "--config", noListen.cfgPath}, code: 2, contains: "sets no listen_address"},
		{name: "missing config", args: []string{"list", "--config", filepath.Join(t.TempDir(), "nope.toml")}, code: 2},
		{name: "bad address", args: []string{"list", "--address", "nonsense"}, code: 2, contains: "invalid address"},
		{name: "nobody listening", args: []string{"list", "--address", freeAddr(t)}, code: 1, contains: "is it running"},
		{name: "extra argument", args: []string{"list", "--address", "127.0.0.1:1", "x"}, code: 2, contains: "usage"},
		{name: "inspect without slash", args: []string{"inspect", "--address", "127.0.0.1:1", "42"}, code: 2, contains: "RUNNER/ID"},
		{name: "inspect bad id", args: []string{"inspect", "--address", "127.0.0.1:1", "cli/x"}, code: 2, contains: "RUNNER/ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLI(t, append([]string{"jobs"}, tc.args...)...)
			require.Error(t, err)
			require.Equal(t, tc.code, exitCodeOf(err), err.Error())
			require.Contains(t, err.Error(), tc.contains)
		})
	}
}

func TestBaseURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"127.0.0.1:9252", "http://127.0.0.1:9252"},
		{"0.0.0.0:9252", "http://127.0.0.1:9252"},
		{":9252", "http://127.0.0.1:9252"},
		{"[::]:9252", "http://[::1]:9252"},
		{"localhost:1234", "http://localhost:1234"},
		{"https://runner.example:9252/", "https://runner.example:9252"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := baseURL(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
