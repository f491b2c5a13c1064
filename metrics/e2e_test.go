package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/dispatcher"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/internal/testlog"
	"gitlab.com/paas-runner/paas-runner/internal/testwait"
	"gitlab.com/paas-runner/paas-runner/metrics"
	"gitlab.com/paas-runner/paas-runner/quota"
	"gitlab.com/paas-runner/paas-runner/state"
)

const runnerToken = "glrt-metrics-e2e-runner-token-0123456789"

// daemon is the real dispatcher (fake executor) against gitlabfake, with
// the metrics and the HTTP server wired as `paas-runner run` does.
type daemon struct {
	gl       *gitlabfake.Server
	d        *dispatcher.Dispatcher
	reg      *prometheus.Registry
	srv      *metrics.Server
	base     string
	logs     *testlog.Buffer
	launched chan int64
}

func startDaemon(t *testing.T, enqueue func(gl *gitlabfake.Server)) *daemon {
	t.Helper()
	dm := &daemon{logs: &testlog.Buffer{}, launched: make(chan int64, 100)}
	log := logrus.New()
	log.SetOutput(dm.logs)
	log.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("daemon logs:\n" + dm.logs.String())
		}
	})
	dm.gl = gitlabfake.New(gitlabfake.Options{Seed: 1}).Start()
	t.Cleanup(dm.gl.Close)
	dm.gl.AddRunner(runnerToken)
	enqueue(dm.gl)

	cfg := config.Default()
	cfg.Concurrent = 10
	cfg.PaasMaxConcurrentProvisioning = 5
	// Each poll reserves the largest flavor's weight while in flight: a
	// check_interval well above a poll's duration leaves moments where the
	// ledger is exactly zero once the jobs are over.
	cfg.CheckInterval = config.Seconds(0.1)
	cfg.JobProgressPollInterval = config.Seconds(0.1)
	cfg.ReconcileInterval = config.Seconds(0.3)
	cfg.ShutdownTimeout = 5
	cfg.PaasLogStatistics = true
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.QuotaComputation = &config.QuotaComputation{ReferenceRunner: "e2e", ReferenceFlavor: "3XL", ReferenceJobsCount: 3}
	r := config.DefaultRunner()
	r.Name = "e2e"
	r.URL = dm.gl.URL()
	r.Token = runnerToken
	r.Executor = config.ExecutorFake
	cfg.Runners = []config.Runner{r}

	executors.Register(config.ExecutorFake, executortest.Factory(executortest.NewCloud(), executortest.Options{
		Flavors: quota.DefaultCleverFlavors(), DefaultFlavor: "M",
		OnLaunch: func(spec executors.JobSpec) { dm.launched <- spec.Job.ID },
	}))
	t.Cleanup(func() {
		executors.Register(config.ExecutorFake, executortest.Factory(executortest.DefaultCloud(), executortest.Options{}))
	})

	dm.reg = prometheus.NewRegistry()
	dm.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(dm.reg, nil)
	require.NoError(t, err)
	d, cleanup, err := dispatcher.Assemble(cfg, log, dispatcher.AssembleOptions{
		Observer: m, CoordinatorObserver: m.ObserveRequest, Store: state.NewMemory(),
		Tuning: dispatcher.Tuning{MaxBackoff: 50 * time.Millisecond, ProvisionTimeout: 10 * time.Second, CallTimeout: 10 * time.Second},
	})
	require.NoError(t, err)
	dm.d = d
	m.SetSnapshot(d.Snapshot)
	dm.srv = metrics.NewServer(cfg.ListenAddress, dm.reg, d, metrics.ReadyWhenClosed(d.Ready()), log)
	require.NoError(t, dm.srv.Start())
	dm.base = "http://" + dm.srv.Addr()

	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		require.NoError(t, dm.srv.Shutdown(sctx))
		require.NoError(t, cleanup(sctx))
	})
	return dm
}

// get returns the body of a 200 answer to GET path.
func (dm *daemon) get(t *testing.T, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, dm.base+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	return string(b)
}

// scrape is one parsed /metrics answer.
type scrape struct {
	text string
	mfs  map[string]*dto.MetricFamily
}

func (dm *daemon) scrape(t *testing.T) scrape {
	t.Helper()
	text := dm.get(t, "/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	return scrape{text: text, mfs: mfs}
}

// sum adds the values of the samples of name whose labels include match.
func (s scrape) sum(name string, match map[string]string) float64 {
	mf := s.mfs[name]
	if mf == nil {
		return 0
	}
	total := 0.0
outer:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue outer
			}
		}
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// waitLaunched returns the ids of the next n launched jobs.
func (dm *daemon) waitLaunched(t *testing.T, n int) []int64 {
	t.Helper()
	return testwait.Receive(t, dm.launched, n, 20*time.Second, "jobs launched")
}

func TestEndToEndMetricsFollowTheLedger(t *testing.T) {
	flavors := []string{"M", "L", "XS", ""}
	var held []int64
	var invalid int64
	dm := startDaemon(t, func(gl *gitlabfake.Server) {
		for _, f := range flavors {
			spec := gitlabfake.JobSpec{RunnerToken: runnerToken}
			if f != "" {
				spec.Variables = map[string]string{quota.FlavorVariable: f}
			}
			held = append(held, gl.Enqueue(spec).ID)
		}
		invalid = gl.Enqueue(gitlabfake.JobSpec{RunnerToken: runnerToken, Variables: map[string]string{quota.FlavorVariable: "HUGE"}}).ID
	})
	launched := dm.waitLaunched(t, len(held))
	require.ElementsMatch(t, held, launched)

	// While the jobs are held, the gauges show them and follow the ledger.
	var during scrape
	require.Eventually(t, func() bool {
		during = dm.scrape(t)
		return during.sum("paas_runner_jobs", map[string]string{"phase": "running"}) == float64(len(held))
	}, 20*time.Second, 5*time.Millisecond, "jobs never all running")
	// The jobs' weights are exactly what the flavors weigh; the ledger
	// total also counts the weight reserved by a job request in flight.
	flavorTable := quota.DefaultCleverFlavors()
	jobsWeight := 0.0
	for _, f := range flavors {
		if f == "" {
			f = "M"
		}
		jobsWeight += flavorTable[f].Weight()
	}
	ledger := dm.d.Snapshot().Ledger
	require.Positive(t, jobsWeight)
	require.InDelta(t, jobsWeight, during.sum("paas_runner_runner_weight_used", map[string]string{"runner": "e2e"}), 1e-6)
	require.GreaterOrEqual(t, during.sum("paas_runner_weight_used", nil), jobsWeight-1e-6)
	require.GreaterOrEqual(t, ledger.WeightUsed, jobsWeight-1e-6)
	require.InDelta(t, ledger.WeightQuota, during.sum("paas_runner_weight_quota", nil), 1e-9)
	require.Positive(t, during.sum("paas_runner_weight_quota", nil))
	require.GreaterOrEqual(t, during.sum("paas_runner_concurrent_jobs", nil), float64(len(held)))
	require.InDelta(t, 10, during.sum("paas_runner_concurrent_jobs_limit", nil), 0)
	require.InDelta(t, 5, during.sum("paas_runner_provisioning_jobs_limit", nil), 0)
	require.InDelta(t, float64(len(held)), during.sum("paas_runner_tracked_resources", nil), 0)
	require.InDelta(t, 1, during.sum("paas_runner_runner_up", map[string]string{"runner": "e2e"}), 0)
	require.Positive(t, during.sum("paas_runner_poll_cycles_total", nil))
	require.Positive(t, during.sum("go_goroutines", nil), "Go collector registered")

	// The API shows the same in-flight jobs.
	var list metrics.JobList
	require.NoError(t, json.Unmarshal([]byte(dm.get(t, metrics.JobsPath)), &list))
	apiWeight := 0.0
	var apiIDs []int64
	for _, j := range list.Jobs {
		if j.Phase == "running" {
			apiIDs = append(apiIDs, j.JobID)
			apiWeight += j.Weight
			require.NotEmpty(t, j.ResourceID)
			require.Equal(t, "e2e", j.Runner)
		}
	}
	require.ElementsMatch(t, held, apiIDs)
	require.InDelta(t, jobsWeight, apiWeight, 1e-6)
	one := dm.get(t, metrics.JobsPath+"/e2e/"+jsonInt(held[0]))
	require.Contains(t, one, `"job_id": `+jsonInt(held[0]))
	debugList := dm.get(t, "/debug/jobs/list")
	require.Contains(t, debugList, "/jobs/"+jsonInt(held[0])+" state=running stage=running executor_stage=fake")
	require.Contains(t, dm.get(t, "/readyz"), "ready")
	texts := []string{during.text, one, debugList, dm.get(t, metrics.JobsPath)}

	// Release the jobs: the gauges go back to zero, the counters add up.
	for _, id := range held {
		require.NoError(t, dm.gl.SimulateRun(id, "done\n", gitlabfake.StateSuccess))
	}
	var after scrape
	require.Eventually(t, func() bool {
		after = dm.scrape(t)
		return after.sum("paas_runner_decommissions_total", nil) == float64(len(held)) &&
			after.sum("paas_runner_weight_used", nil) == 0 && after.sum("paas_runner_jobs", nil) == 0 &&
			after.sum("paas_runner_concurrent_jobs", nil) == 0
	}, 20*time.Second, 5*time.Millisecond, "weight and jobs never back to zero")
	require.InDelta(t, 0, after.sum("paas_runner_provisioning_jobs", nil), 0)
	require.InDelta(t, 0, after.sum("paas_runner_runner_weight_used", nil), 0)
	require.InDelta(t, 0, after.sum("paas_runner_tracked_resources", nil), 0)

	counters := []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"paas_runner_job_acquisitions_total", nil, 4},
		{"paas_runner_job_acquisitions_total", map[string]string{"flavor": "M"}, 1},
		{"paas_runner_job_acquisitions_total", map[string]string{"flavor": "default"}, 1},
		{"paas_runner_job_launches_total", map[string]string{"runner": "e2e"}, 4},
		{"paas_runner_job_launch_failures_total", nil, 1},
		{"paas_runner_job_launch_failures_total", map[string]string{"failure_reason": "script_failure"}, 1},
		{"paas_runner_job_finishes_total", nil, 4},
		{"paas_runner_decommissions_total", nil, 4},
		{"paas_runner_decommission_failures_total", nil, 0},
		{"paas_runner_provisioning_duration_seconds", nil, 4},
		{"paas_runner_job_start_delay_seconds", nil, 4},
		{"paas_runner_decommission_duration_seconds", nil, 4},
		{"paas_runner_api_requests_total", map[string]string{"api": coordinator.API, "status": "201"}, 5},
	}
	for _, c := range counters {
		require.InDelta(t, c.want, after.sum(c.name, c.match), 0, "%s%v", c.name, c.match)
	}
	require.Positive(t, after.sum("paas_runner_weight_seconds_total", map[string]string{"runner": "e2e"}), "cost accrued")
	require.Positive(t, after.sum("paas_runner_api_request_duration_seconds", map[string]string{"api": coordinator.API}))
	j, _ := dm.gl.Job(invalid)
	require.Equal(t, gitlabfake.StateFailed, j.State)

	// promlint is clean on the whole scrape, Go and process collectors
	// included.
	problems, err := promlint.New(strings.NewReader(after.text)).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)

	// The statistics line is logged every cycle with the §11.3 keys.
	logs := dm.logs.String()
	require.Contains(t, logs, "JSON statistics: ")
	for _, k := range []string{
		"weight_quota", "current_weight", "weight_headroom", "can_take_job",
		"max_jobs_in_provisioning", "jobs_in_provisioning", "current_concurrent_jobs", "max_concurrent_jobs",
	} {
		require.Contains(t, logs, `\"`+k+`\":`)
	}

	// No token anywhere: metrics, API answers, debug list, dump, logs.
	c, err := metrics.Counters(dm.reg)
	require.NoError(t, err)
	dump, err := json.Marshal(map[string]any{"snapshot": dm.d.Snapshot(), "counters": c})
	require.NoError(t, err)
	texts = append(texts, after.text, string(dump), dm.get(t, metrics.JobsPath), logs)
	secrets := []string{runnerToken}
	for _, id := range append(held, invalid) {
		j, _ := dm.gl.Job(id)
		require.NotEmpty(t, j.Token)
		secrets = append(secrets, j.Token)
	}
	for _, text := range texts {
		for _, s := range secrets {
			require.NotContains(t, text, s)
		}
	}
}

func jsonInt(i int64) string {
	b, _ := json.Marshal(i)
	return string(b)
}
