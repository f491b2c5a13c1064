package devmode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/dispatcher"
	"gitlab.com/paas-runner/paas-runner/metrics"
	"gitlab.com/paas-runner/paas-runner/state"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/localdocker"
	"gitlab.com/paas-runner/paas-runner/executors/localprocess"
)

// Demo identities.
const (
	demoProject     = "acme/demo"
	demoRunnerToken = "glrt-paas-runner-dev-mode"
	demoRunnerName  = "dev"
)

// Options configure Run. The zero value runs the default demo.
type Options struct {
	// Dir is where everything is written (repository, work root, logs);
	// default a new temporary directory, kept for the logs.
	Dir string
	// Listen is the address of the fake GitLab (default 127.0.0.1:0).
	Listen string
	// Executor is the executor kind: local-process (default) or
	// local-docker (inner_runner = "agent", host networking, needs Image).
	Executor string
	// Image is the job image with local-docker (default alpine:3.20; it
	// must have a POSIX sh).
	Image string
	// AgentBinary is the static paas-runner binary put in job images with
	// local-docker (default: the running executable).
	AgentBinary string
	// Jobs is the pipeline (default DemoPipeline(Scale)).
	Jobs []DemoJob
	// Scale multiplies the demo's sleeps and the daemon's intervals
	// (default 1; tests use less).
	Scale float64
	// Out receives the progress and the summary (default os.Stdout).
	Out io.Writer
	// Interactive redraws a live table with ANSI escapes; otherwise one
	// plain line per change is printed.
	Interactive bool
	// Logger receives the daemon's logs (default: warnings to stderr).
	Logger logrus.FieldLogger
	// Timeout bounds the whole demo (default 5 min).
	Timeout time.Duration
	// Version is advertised by the dispatcher.
	Version string
	// MetricsListen is where /metrics (and the local API) is served during
	// the demo (default 127.0.0.1:0; "off" disables it).
	MetricsListen string
}

// JobResult is the outcome of one demo job.
type JobResult struct {
	ID            int64
	Name          string
	Flavor        string
	Weight        float64
	State         string
	FailureReason string
	Want          string
	WantReason    string
	Duration      time.Duration
	LogPath       string
}

// Expected reports whether the job ended as the demo expects.
func (r JobResult) Expected() bool {
	return r.State == r.Want && (r.WantReason == "" || r.FailureReason == r.WantReason)
}

// Summary is the outcome of the demo.
type Summary struct {
	Jobs   []JobResult
	Dir    string
	LogDir string
	// MetricsURL is where /metrics was served ("" when off).
	MetricsURL string
	// Counters are the paas_runner counters at the end of the demo.
	Counters map[string]float64
}

// AllExpected reports whether every job ended as expected.
func (s Summary) AllExpected() bool {
	for _, j := range s.Jobs {
		if !j.Expected() {
			return false
		}
	}
	return len(s.Jobs) > 0
}

func (o *Options) setDefaults() error {
	if o.Scale <= 0 {
		o.Scale = 1
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.MetricsListen == "" {
		o.MetricsListen = "127.0.0.1:0"
	}
	if o.Executor == "" {
		o.Executor = config.ExecutorLocalProcess
	}
	switch o.Executor {
	case config.ExecutorLocalProcess:
	case config.ExecutorLocalDocker:
		if o.Image == "" {
			o.Image = "alpine:3.20"
		}
	default:
		return fmt.Errorf("dev mode: executor %q is not available (use %s or %s)", o.Executor, config.ExecutorLocalProcess, config.ExecutorLocalDocker)
	}
	if o.Jobs == nil {
		o.Jobs = DemoPipeline(o.Scale)
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.WarnLevel)
		o.Logger = l
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "paas-runner-dev-")
		if err != nil {
			return fmt.Errorf("create dev directory: %w", err)
		}
		o.Dir = d
	}
	return nil
}

// configTOML is the daemon configuration of the demo.
func configTOML(o *Options, url, workRoot, stateFile string) string {
	var b strings.Builder
	s := o.Scale
	fmt.Fprintf(&b, "concurrent = 6\ncheck_interval = %g\njob_progress_poll_interval = %g\n", 0.5*s, 0.5*s)
	fmt.Fprintf(&b, "log_level = \"warning\"\nshutdown_timeout = 10\nreconcile_interval = 300\nstate_file = %q\n", stateFile)
	fmt.Fprintf(&b, "paas_max_concurrent_provisioning = 4\npaas_min_seconds_between_launches = 0\npaas_log_statistics = false\n\n")
	fmt.Fprintf(&b, "[quota_computation]\nreference_runner = %q\nreference_flavor = \"M\"\nreference_jobs_count = 3\n\n", demoRunnerName)
	fmt.Fprintf(&b, "[[runners]]\nname = %q\nurl = %q\ntoken = %q\nexecutor = %q\nlocal_default_flavor = %q\n",
		demoRunnerName, url, demoRunnerToken, o.Executor, demoDefaultFlavor)
	if o.Executor == config.ExecutorLocalDocker {
		fmt.Fprintf(&b, "inner_runner = \"agent\"\n")
	} else {
		fmt.Fprintf(&b, "work_root = %q\n", workRoot)
	}
	fmt.Fprintf(&b, "[runners.local_flavors]\n")
	for _, f := range demoFlavors {
		fmt.Fprintf(&b, "%s = { memory_mib = %d, cpus = %g }\n", f.Name, f.MiB, f.CPUs)
	}
	fmt.Fprintf(&b, "[runners.agent]\ntrace_interval = %g\nkeep_alive_interval = %g\n", 0.5*s, 1*s)
	return b.String()
}

// Run runs the demo until every job is over (or ctx/timeout ends) and
// returns its summary. It prints progress and the summary to o.Out.
func Run(ctx context.Context, o Options) (Summary, error) {
	if err := o.setDefaults(); err != nil {
		return Summary{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	sum := Summary{Dir: o.Dir, LogDir: filepath.Join(o.Dir, "logs")}
	repoDir := filepath.Join(o.Dir, "repo")
	workRoot := filepath.Join(o.Dir, "jobs")
	for _, d := range []string{repoDir, workRoot, sum.LogDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return sum, fmt.Errorf("create %s: %w", d, err)
		}
	}
	sha, err := CreateDemoRepo(repoDir)
	if err != nil {
		return sum, err
	}
	gitH, err := GitHandler(repoDir)
	if err != nil {
		return sum, err
	}

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return sum, fmt.Errorf("listen for the fake GitLab: %w", err)
	}
	url := "http://" + ln.Addr().String()
	fake := gitlabfake.New(gitlabfake.Options{ExternalURL: url, TraceUpdateInterval: 3})
	fake.AddRunner(demoRunnerToken)
	mux := http.NewServeMux()
	mux.Handle("/"+demoProject+".git/", gitH)
	mux.Handle("/", pinCommit(fake, sha))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		_ = srv.Serve(ln)
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		<-srvDone
	}()

	cfgPath := filepath.Join(o.Dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(configTOML(&o, url, workRoot, filepath.Join(o.Dir, "state.json"))), 0o600); err != nil {
		return sum, fmt.Errorf("write dev config: %w", err)
	}
	cfg, err := config.LoadAndValidate(cfgPath)
	if err != nil {
		return sum, fmt.Errorf("dev config: %w", err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, nil)
	if err != nil {
		return sum, fmt.Errorf("dev metrics: %w", err)
	}
	d, store, err := newDispatcher(&o, cfg, m)
	if err != nil {
		return sum, err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer ccancel()
		_ = store.Close(cctx)
	}()
	m.SetSnapshot(d.Snapshot)
	if o.MetricsListen != "off" {
		msrv := metrics.NewServer(o.MetricsListen, reg, d, metrics.ReadyWhenClosed(d.Ready()), o.Logger)
		if err := msrv.Start(); err != nil {
			return sum, fmt.Errorf("start metrics server: %w", err)
		}
		sum.MetricsURL = "http://" + msrv.Addr() + "/metrics"
		defer func() {
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer scancel()
			_ = msrv.Shutdown(sctx)
		}()
	}

	fmt.Fprintf(o.Out, "paas-runner dev: fake GitLab on %s, demo project %s (%s), executor %s\n", url, demoProject, sha[:8], o.Executor)
	if sum.MetricsURL != "" {
		fmt.Fprintf(o.Out, "metrics on %s\n", sum.MetricsURL)
	}
	fmt.Fprintf(o.Out, "work directory %s\n\n", o.Dir)
	for _, j := range o.Jobs {
		vars := map[string]string{}
		if j.Flavor != "" {
			vars["CI_CLEVER_CLOUD_FLAVOR"] = j.Flavor
		}
		fj := fake.Enqueue(gitlabfake.JobSpec{
			RunnerToken: demoRunnerToken, Project: demoProject, Name: j.Name, Stage: "test",
			Script: j.Script, AfterScript: j.AfterScript, Variables: vars, Timeout: 600, Image: o.Image,
		})
		sum.Jobs = append(sum.Jobs, JobResult{ID: fj.ID, Name: j.Name, Flavor: j.Flavor, Want: j.Want, WantReason: j.WantReason})
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()

	p := newProgress(o.Out, o.Interactive, sum.Jobs)
	err = p.watch(ctx, fake, d)
	stop()
	if rerr := <-runErr; rerr != nil && err == nil {
		err = fmt.Errorf("dispatcher: %w", rerr)
	}
	p.final(fake, &sum)
	if c, cerr := metrics.Counters(reg); cerr == nil {
		sum.Counters = c
	}
	for i := range sum.Jobs {
		j := &sum.Jobs[i]
		fj, _ := fake.Job(j.ID)
		j.LogPath = filepath.Join(sum.LogDir, fmt.Sprintf("job-%d-%s.log", j.ID, j.Name))
		if werr := os.WriteFile(j.LogPath, fj.Trace, 0o600); werr != nil && err == nil {
			err = fmt.Errorf("save job log: %w", werr)
		}
	}
	printSummary(o.Out, sum)
	return sum, err
}

// newDispatcher builds the real dispatcher for the demo runner, with an
// in-memory state store. Executors are built here rather than through the
// registry so that local-docker job containers share the host network (they
// must reach the fake GitLab on loopback).
func newDispatcher(o *Options, cfg *config.Config, m *metrics.Metrics) (*dispatcher.Dispatcher, state.Store, error) {
	r := &cfg.Runners[0]
	log := o.Logger.WithField("runner", r.Label())
	cl := coordinator.New(r.URL, r.Token, coordinator.Options{Logger: log, Observer: m.ObserveRequest, Version: o.Version})
	deps := executors.Deps{Logger: log.WithField("executor", r.Executor), Coordinator: cl}
	var ex executors.Executor
	var err error
	if r.Executor == config.ExecutorLocalDocker {
		ex, err = localdocker.New(r, deps, localdocker.Options{NetworkMode: "host", AgentBinary: o.AgentBinary})
	} else {
		ex, err = localprocess.New(r, deps, localprocess.Options{})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("build the %s executor: %w", r.Executor, err)
	}
	store := state.NewMemory()
	d, err := dispatcher.New(cfg, dispatcher.Options{
		Logger:       o.Logger,
		Store:        store,
		Executors:    map[string]executors.Executor{r.ShortID(): ex},
		Coordinators: map[string]dispatcher.Coordinator{r.ShortID(): cl},
		Observer:     m,
		Tuning:       dispatcher.Tuning{MaxBackoff: time.Duration(2 * o.Scale * float64(time.Second))},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("build dispatcher: %w", err)
	}
	return d, store, nil
}

// pinCommit makes the fake's job payloads point at the demo repository's
// real head commit (the fake uses a fixed made-up sha), with a full-depth
// fetch of main (go-git's server has no shallow support).
func pinCommit(fake http.Handler, sha string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v4/jobs/request" {
			fake.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusCreated {
			var p map[string]any
			if json.Unmarshal(body, &p) == nil {
				if gi, ok := p["git_info"].(map[string]any); ok {
					gi["sha"] = sha
					gi["depth"] = 0
					gi["refspecs"] = []string{"+refs/heads/main:refs/remotes/origin/main"}
					if b, err := json.Marshal(p); err == nil {
						body = b
					}
				}
			}
		}
		maps.Copy(w.Header(), rec.Header())
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, bytes.NewReader(body))
	})
}

// finalState reports whether a fake job state is final.
func finalState(s string) bool {
	return s == gitlabfake.StateSuccess || s == gitlabfake.StateFailed || s == gitlabfake.StateCanceled
}

var errTimeout = errors.New("the demo pipeline did not finish in time")
