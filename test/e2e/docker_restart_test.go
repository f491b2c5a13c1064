package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
	"gitlab.com/paas-runner/paas-runner/state"
)

// dockerRestartEnv enables TestDockerDaemonRestart, which stops and
// restarts the host's Docker daemon: it must never run next to other
// Docker tests (`make test` runs packages concurrently).
const dockerRestartEnv = "PAAS_CHAOS_DOCKER_RESTART"

// dockerdLog is where the restarted daemon writes, as in .ci/run.
const dockerdLog = "/tmp/dockerd.log"

const restartRunnerToken = "glrt-E2EDockerRestart-5d0c3a"

// The jobs of the Docker restart scenario, by the moment they are enqueued
// and how long the stand-in inner runner sleeps before reporting success.
var (
	// before the restart, done before it: they succeed.
	restartEarlySleep = "2s"
	// before the restart, still running when the daemon stops: their
	// containers are killed, the liveness check must fail them.
	restartLongSleep = "5m"
	// enqueued while the daemon is down: their image build fails, a
	// launch failure must be reported; and after the restart: the
	// runner must have recovered, they succeed.
	restartLateSleep = "2s"
)

// TestDockerDaemonRestart runs the real binary with a local-docker runner
// and restarts the Docker daemon mid-run (issue 12 item 3): 3 jobs finish
// before the restart, 4 are running when the daemon stops, 2 are acquired
// while it is down and 1 arrives after it is back. Pass = every job
// succeeded or failed with a reason, 0 hanging, 0 containers or images of
// the runner left, 0 still tracked, 0 secrets in the runner's output.
//
// It needs root, a dockerd started by hand (it is stopped with SIGTERM and
// started again as .ci/run does, `dockerd >/tmp/dockerd.log 2>&1 &`) and
// PAAS_CHAOS_DOCKER_RESTART=1; `make chaos` sets it. The containers reach
// gitlabfake on the docker0 bridge address (default network, as in
// production), or PAAS_CHAOS_BRIDGE_IP.
func TestDockerDaemonRestart(t *testing.T) {
	if os.Getenv(dockerRestartEnv) != "1" {
		t.Skipf("restarts the host's Docker daemon: set %s=1 to run it (make chaos does), never next to other Docker tests", dockerRestartEnv)
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s=1 but not root: restarting dockerd needs root", dockerRestartEnv)
	}
	_, err := exec.LookPath("dockerd")
	require.NoError(t, err, "dockerd is not in PATH")
	c := dockertest.Require(t)
	inner := dockertest.InnerImage(t, c)
	bridge := bridgeIP(t)

	// gitlabfake on the bridge address: reachable by the runner and by
	// containers on the default bridge network.
	ln, err := net.Listen("tcp", net.JoinHostPort(bridge, "0"))
	require.NoError(t, err, "listen on the docker0 address")
	glURL := "http://" + ln.Addr().String()
	gl := gitlabfake.New(gitlabfake.Options{ExternalURL: glURL, TraceUpdateInterval: -1, Seed: 13})
	gl.AddRunner(restartRunnerToken)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: gl, ReadHeaderTimeout: 10 * time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	runnerCfg := config.Runner{URL: glURL, Token: config.Secret(restartRunnerToken)}
	labels := map[string]string{docker.LabelRunner: runnerCfg.ShortID()}
	// Whatever happens, remove the runner's leftovers, and leave a
	// running daemon behind (cleanups run last-registered first: the
	// daemon is back before anything is removed).
	t.Cleanup(func() { removeLabelled(c, labels) })
	t.Cleanup(func() { ensureDockerd(t) })

	statePath := filepath.Join(dir, "state.json")
	cfgPath := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`concurrent = 10
check_interval = 0.05
job_progress_poll_interval = 0.5
log_level = "debug"
shutdown_timeout = 30
state_file = %q
reconcile_interval = 1
paas_max_concurrent_provisioning = 10

[quota_computation]
  reference_runner = "docker-restart"
  reference_flavor = %q
  reference_jobs_count = 10

[[runners]]
  name = "docker-restart"
  url = %q
  token = %q
  executor = "local-docker"
  heptapod_runner_main_image = %q
`, statePath, config.DefaultLocalDefaultFlavor, glURL, restartRunnerToken, inner)), 0o600))

	logPath := filepath.Join(dir, "runner.log")
	p := startRunner(t, cfgPath, logPath)
	require.True(t, waitFor(t.Context(), time.Minute, func() bool {
		return p.exited() || strings.Contains(readFile(logPath), readyLine)
	}) && !p.exited(), "the runner did not get ready; last output:\n%s", p.tail(20))

	enqueue := func(n int, sleep string) []int64 {
		ids := make([]int64, 0, n)
		for range n {
			ids = append(ids, gl.Enqueue(gitlabfake.JobSpec{RunnerToken: restartRunnerToken, Variables: map[string]string{"STANDIN_SLEEP": sleep}}).ID)
		}
		return ids
	}
	early := enqueue(3, restartEarlySleep)
	long := enqueue(4, restartLongSleep)
	// Mid-run: the early jobs are done and every long job's container runs.
	midRun := waitFor(t.Context(), 3*time.Minute, func() bool {
		return allSucceeded(gl, early) && runningContainers(t.Context(), c, labels) >= len(long)
	})
	require.True(t, midRun, "the run did not reach the restart point: early jobs %v, %d containers running; last output:\n%s",
		jobStates(gl, early), runningContainers(t.Context(), c, labels), p.tail(20))

	down := time.Now()
	stopDockerd(t, c)
	// Jobs acquired while the daemon is down.
	outage := enqueue(2, restartLateSleep)
	acquired := waitFor(t.Context(), 30*time.Second, func() bool { return allFinal(gl, outage) })
	// "A couple of seconds" at least, so that the liveness checks of the
	// running jobs also fail a few times.
	wait(t.Context(), 2*time.Second)
	startDockerd(t)
	outageFor := time.Since(down)
	after := enqueue(1, restartLateSleep)

	ids := slices.Concat(early, long, outage, after)
	drained := waitFor(t.Context(), envDuration("PAAS_E2E_DRAIN", 3*time.Minute), func() bool {
		return allFinal(gl, ids) && labelledCount(t.Context(), c, labels) == 0
	})
	if !drained {
		t.Logf("not drained: jobs %v, %d containers/images of the runner left", jobStates(gl, ids), labelledCount(t.Context(), c, labels))
	}
	waitFor(t.Context(), 10*time.Second, func() bool { return trackedIn(t, statePath) == 0 })
	require.False(t, p.exited(), "the runner exited during the run (%v); last output:\n%s", p.err, p.tail(20))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, p.wait(60*time.Second), "runner did not stop on SIGTERM")
	require.True(t, p.cmd.ProcessState.Success(), "runner exit status after SIGTERM: %v; last output:\n%s", p.err, p.tail(15))

	r := report{scenario: "Docker daemon restarted mid-run", jobs: len(ids)}
	reasons := map[string]int{}
	for _, id := range ids {
		j, _ := gl.Job(id)
		switch {
		case j.State == gitlabfake.StateSuccess:
			r.succeeded++
		case j.State == gitlabfake.StateFailed && j.FailureReason != "":
			r.failed++
			reasons[j.FailureReason]++
		default:
			r.hanging++
			t.Logf("job %d hanging: state %q reason %q; runner log lines about it:\n%s", id, j.State, j.FailureReason, linesMentioning(readFile(logPath), strconv.FormatInt(id, 10)))
		}
	}
	for reason, n := range reasons {
		r.reasons = append(r.reasons, fmt.Sprintf("%s×%d", reason, n))
	}
	slices.Sort(r.reasons)
	r.leaked = labelledCount(t.Context(), c, labels)
	if r.leaked != 0 {
		logLeftovers(t, c, labels, readFile(logPath))
	}
	r.tracked = trackedIn(t, statePath)
	logs := readFile(logPath)
	secrets := []string{restartRunnerToken}
	for _, j := range gl.Jobs() {
		secrets = append(secrets, j.Token)
	}
	for _, s := range secrets {
		if n := strings.Count(logs, s); n > 0 {
			r.secrets += n
			t.Logf("a secret (%d chars) appears %d times in the runner output", len(s), n)
		}
	}
	r.extra = fmt.Sprintf("daemon down %.1fs; before: %s (done) + %s (running, containers killed); during the outage: %s (all final before the restart: %t); after: %s; failure reasons: %s",
		outageFor.Seconds(), stateSummary(gl, early), stateSummary(gl, long), stateSummary(gl, outage), acquired, stateSummary(gl, after), strings.Join(r.reasons, ", "))
	printTable(t, []report{r})
	r.requirePass(t)
	// The restart must have hit the run: the long jobs lost their
	// containers, so none of them can have succeeded.
	for _, id := range long {
		j, _ := gl.Job(id)
		require.Equal(t, gitlabfake.StateFailed, j.State, "job %d's container was killed by the restart", id)
	}
	for _, id := range after {
		j, _ := gl.Job(id)
		require.Equal(t, gitlabfake.StateSuccess, j.State, "job %d came after the restart: the runner must have recovered", id)
	}
}

// bridgeIP returns PAAS_CHAOS_BRIDGE_IP, else the IPv4 address of docker0:
// the host as seen from containers on the default bridge network.
func bridgeIP(t *testing.T) string {
	t.Helper()
	if ip := os.Getenv("PAAS_CHAOS_BRIDGE_IP"); ip != "" {
		return ip
	}
	iface, err := net.InterfaceByName("docker0")
	require.NoError(t, err, "no docker0 bridge: set PAAS_CHAOS_BRIDGE_IP to an address containers can reach")
	addrs, err := iface.Addrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatal("docker0 has no IPv4 address: set PAAS_CHAOS_BRIDGE_IP")
	return ""
}

// restartProcess is one run of `paas-runner run CONFIG`.
type restartProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func startRunner(t *testing.T, cfgPath, logPath string) *restartProcess {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	cmd := exec.Command(binary, "run", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	require.NoError(t, cmd.Start())
	_ = logf.Close()
	p := &restartProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *restartProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *restartProcess) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

func (p *restartProcess) tail(n int) string {
	lines := strings.Split(strings.TrimRight(readFile(p.logPath), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

func linesMentioning(text, s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// trackedIn returns how many jobs the state file tracks.
func trackedIn(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	f, _, err := state.Decode(data, nil)
	require.NoError(t, err)
	return len(f.Jobs)
}

func allFinal(gl *gitlabfake.Server, ids []int64) bool {
	for _, id := range ids {
		if j, ok := gl.Job(id); !ok || !final(j) {
			return false
		}
	}
	return true
}

func allSucceeded(gl *gitlabfake.Server, ids []int64) bool {
	for _, id := range ids {
		if j, ok := gl.Job(id); !ok || j.State != gitlabfake.StateSuccess {
			return false
		}
	}
	return true
}

// jobStates lists "id:state[/reason]".
func jobStates(gl *gitlabfake.Server, ids []int64) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		j, _ := gl.Job(id)
		s := fmt.Sprintf("%d:%s", id, j.State)
		if j.FailureReason != "" {
			s += "/" + j.FailureReason
		}
		out = append(out, s)
	}
	return out
}

// stateSummary counts jobs by final state, "2 success, 1 failed/reason".
func stateSummary(gl *gitlabfake.Server, ids []int64) string {
	counts := map[string]int{}
	for _, id := range ids {
		j, _ := gl.Job(id)
		k := string(j.State)
		if j.FailureReason != "" {
			k += " (" + j.FailureReason + ")"
		}
		counts[k]++
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, " + ")
}

// runningContainers counts the running containers carrying labels.
func runningContainers(ctx context.Context, c *docker.Client, labels map[string]string) int {
	cs, err := c.ListByLabel(ctx, labels)
	if err != nil {
		return 0
	}
	n := 0
	for _, ct := range cs {
		if st, err := c.Inspect(ctx, ct.ID); err == nil && st.Status == docker.StatusRunning {
			n++
		}
	}
	return n
}

// labelledCount counts the containers and images carrying labels (-1 when
// the daemon does not answer).
func labelledCount(ctx context.Context, c *docker.Client, labels map[string]string) int {
	cs, err := c.ListByLabel(ctx, labels)
	if err != nil {
		return -1
	}
	imgs, err := c.ImagesByLabel(ctx, labels)
	if err != nil {
		return -1
	}
	return len(cs) + len(imgs)
}

// removeLabelled removes what the runner left, even when the test failed.
func removeLabelled(c *docker.Client, labels map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, _ := c.ListByLabel(ctx, labels)
	for _, ct := range cs {
		_ = c.Remove(ctx, ct.ID, "")
	}
	imgs, _ := c.ImagesByLabel(ctx, labels)
	for _, img := range imgs {
		_ = c.Remove(ctx, "", img.ID)
	}
}

// dockerdPIDs returns the pids of the running dockerd processes.
func dockerdPIDs() []int {
	out, _ := exec.Command("pidof", "dockerd").Output()
	var pids []int
	for f := range strings.FieldsSeq(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// dockerInfoAnswers reports whether `docker info` answers.
func dockerInfoAnswers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

// stopDockerd sends SIGTERM to dockerd and waits until its socket stops
// answering and the process is gone (it stops the containers first, up to
// their 10 s stop timeout).
func stopDockerd(t *testing.T, c *docker.Client) {
	t.Helper()
	pids := dockerdPIDs()
	require.Len(t, pids, 1, "want exactly one dockerd")
	t.Logf("stopping dockerd (pid %d)", pids[0])
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGTERM))
	stopped := waitFor(t.Context(), 2*time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := c.Ping(ctx)
		return err != nil && len(dockerdPIDs()) == 0
	})
	require.True(t, stopped, "dockerd did not stop within 2 minutes after SIGTERM")
}

// startDockerd starts dockerd as .ci/run does, in its own session so that
// it outlives the test, and waits until `docker info` answers.
func startDockerd(t *testing.T) {
	t.Helper()
	require.NoError(t, launchDockerd())
	require.True(t, waitFor(t.Context(), 2*time.Minute, func() bool { return dockerInfoAnswers(t.Context()) }),
		"dockerd did not answer within 2 minutes after its restart; see %s", dockerdLog)
}

func launchDockerd() error {
	logf, err := os.Create(dockerdLog)
	if err != nil {
		return fmt.Errorf("create dockerd log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("dockerd")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	// Never waited on: the daemon outlives the test.
	if err := cmd.Process.Release(); err != nil {
		return fmt.Errorf("release dockerd: %w", err)
	}
	return nil
}

// ensureDockerd leaves a running daemon behind, even when the test failed
// between stopping and restarting it.
func ensureDockerd(t *testing.T) {
	ctx := context.Background()
	if dockerInfoAnswers(ctx) {
		return
	}
	if len(dockerdPIDs()) == 0 {
		if err := launchDockerd(); err != nil {
			t.Errorf("restart dockerd: %v", err)
			return
		}
	}
	if !waitFor(ctx, 2*time.Minute, func() bool { return dockerInfoAnswers(ctx) }) {
		t.Errorf("dockerd does not answer; see %s", dockerdLog)
	}
}

// logLeftovers logs each container and image of the runner still there,
// with the runner's log lines about it.
func logLeftovers(t *testing.T, c *docker.Client, labels map[string]string, logs string) {
	t.Helper()
	names := map[string]bool{}
	cs, err := c.ListByLabel(t.Context(), labels)
	require.NoError(t, err)
	for _, ct := range cs {
		st, _ := c.Inspect(t.Context(), ct.ID)
		t.Logf("leaked container %s (%s, status %s, exit code %d)", ct.Name, ct.Labels[docker.LabelName], st.Status, st.ExitCode)
		names[ct.Labels[docker.LabelName]] = true
	}
	imgs, err := c.ImagesByLabel(t.Context(), labels)
	require.NoError(t, err)
	for _, img := range imgs {
		t.Logf("leaked image %v (%s)", img.Tags, img.Labels[docker.LabelName])
		names[img.Labels[docker.LabelName]] = true
	}
	for name := range names {
		id := name[strings.LastIndexByte(name, '-')+1:]
		t.Logf("runner log lines about job %s:\n%s", id, linesMentioning(logs, id))
	}
}
