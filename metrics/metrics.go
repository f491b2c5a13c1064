package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gitlab.com/paas-runner/paas-runner/dispatcher"
)

// Namespace prefixes every metric name.
const Namespace = "paas_runner"

// Phases are the values of the phase label of paas_runner_jobs: the state
// phases plus "kept" (a resource kept on purpose). Every runner always
// exports one sample per phase, zero included.
var Phases = []string{"pending", "provisioned", "launched", "running", "decommissioning", "kept"}

// Histogram buckets, in seconds.
var (
	// provisioningBuckets cover a local process (sub-second) up to a slow
	// PaaS deployment (30 min).
	provisioningBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800}
	// requestBuckets cover one HTTP attempt.
	requestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// Metrics holds the daemon's metrics. It implements dispatcher.Observer;
// ObserveRequest has the signature of coordinator.Observer. All methods
// are safe for concurrent use and never block.
type Metrics struct {
	snap atomic.Pointer[func() dispatcher.Snapshot]

	acquisitions        *prometheus.CounterVec
	launches            *prometheus.CounterVec
	launchFailures      *prometheus.CounterVec
	finishes            *prometheus.CounterVec
	weightSeconds       *prometheus.CounterVec
	decommissions       *prometheus.CounterVec
	decommissionFails   *prometheus.CounterVec
	orphansFound        *prometheus.CounterVec
	orphansDeleted      *prometheus.CounterVec
	provisioningSeconds *prometheus.HistogramVec
	startDelaySeconds   *prometheus.HistogramVec
	decommissionSeconds *prometheus.HistogramVec
	requests            *prometheus.CounterVec
	requestSeconds      *prometheus.HistogramVec
}

var _ dispatcher.Observer = (*Metrics)(nil)

// New builds the metrics and registers them, with a collector reading
// snap() at scrape time, on reg. snap may be nil and set later with
// SetSnapshot (the dispatcher is built after its Observer).
func New(reg prometheus.Registerer, snap func() dispatcher.Snapshot) (*Metrics, error) {
	m := newMetrics()
	if snap != nil {
		m.SetSnapshot(snap)
	}
	cs := []prometheus.Collector{
		m.acquisitions, m.launches, m.launchFailures, m.finishes, m.weightSeconds,
		m.decommissions, m.decommissionFails, m.orphansFound, m.orphansDeleted,
		m.provisioningSeconds, m.startDelaySeconds, m.decommissionSeconds,
		m.requests, m.requestSeconds,
		snapshotCollector{m: m},
	}
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

func newMetrics() *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	}
	return &Metrics{
		acquisitions:      counter("job_acquisitions_total", "Jobs acquired from a coordinator and admitted by the quota, by runner and flavor.", "runner", "flavor"),
		launches:          counter("job_launches_total", "Jobs handed over to their fresh resource and really started.", "runner"),
		launchFailures:    counter("job_launch_failures_total", "Jobs that could not be launched, by the failure_reason reported to the coordinator (or canceled).", "runner", "failure_reason"),
		finishes:          counter("job_finishes_total", "Started jobs the coordinator reported as over.", "runner"),
		weightSeconds:     counter("weight_seconds_total", "Cost: quota weight multiplied by running time of the finished jobs, in weight-seconds.", "runner"),
		decommissions:     counter("decommissions_total", "Resources deleted after their job.", "runner"),
		decommissionFails: counter("decommission_failures_total", "Failed resource deletion attempts (each is retried).", "runner"),
		orphansFound:      counter("orphans_found_total", "Resources found by reconciliation that no tracked job owns.", "runner"),
		orphansDeleted:    counter("orphans_deleted_total", "Orphan resources deleted by reconciliation.", "runner"),
		provisioningSeconds: histogram("provisioning_duration_seconds",
			"Time from the start of provisioning to the job's real start.", provisioningBuckets, "runner"),
		startDelaySeconds: histogram("job_start_delay_seconds",
			"Time from the job's acquisition to its real start.", provisioningBuckets, "runner"),
		decommissionSeconds: histogram("decommission_duration_seconds",
			"Time from the decision to delete a resource to its deletion.", provisioningBuckets, "runner"),
		requests: counter("api_requests_total",
			"HTTP request attempts to the coordinators and PaaS APIs, by api, endpoint template and status (\"error\": no response).",
			"api", "endpoint", "status"),
		requestSeconds: histogram("api_request_duration_seconds",
			"Duration of the HTTP request attempts to the coordinators and PaaS APIs, by status class.",
			requestBuckets, "api", "endpoint", "status_class"),
	}
}

// SetSnapshot sets the function the collector reads at scrape time
// (usually (*dispatcher.Dispatcher).Snapshot).
func (m *Metrics) SetSnapshot(snap func() dispatcher.Snapshot) { m.snap.Store(&snap) }

// snapshot returns the current snapshot, or the zero one.
func (m *Metrics) snapshot() dispatcher.Snapshot {
	if f := m.snap.Load(); f != nil && *f != nil {
		return (*f)()
	}
	return dispatcher.Snapshot{}
}

// JobAcquired implements dispatcher.Observer.
func (m *Metrics) JobAcquired(runner, flavor string) {
	m.acquisitions.WithLabelValues(runner, flavor).Inc()
}

// LaunchSucceeded implements dispatcher.Observer.
func (m *Metrics) LaunchSucceeded(runner string, d time.Duration) {
	m.launches.WithLabelValues(runner).Inc()
	m.provisioningSeconds.WithLabelValues(runner).Observe(d.Seconds())
}

// LaunchFailed implements dispatcher.Observer.
func (m *Metrics) LaunchFailed(runner, reason string) {
	if reason == "" {
		reason = "unknown_failure"
	}
	m.launchFailures.WithLabelValues(runner, reason).Inc()
}

// JobStarted implements dispatcher.Observer.
func (m *Metrics) JobStarted(runner string, sinceAcquired time.Duration) {
	m.startDelaySeconds.WithLabelValues(runner).Observe(sinceAcquired.Seconds())
}

// JobFinished implements dispatcher.Observer.
func (m *Metrics) JobFinished(runner string, weightSeconds float64) {
	m.finishes.WithLabelValues(runner).Inc()
	if weightSeconds > 0 {
		m.weightSeconds.WithLabelValues(runner).Add(weightSeconds)
	} else {
		m.weightSeconds.WithLabelValues(runner)
	}
}

// Decommissioned implements dispatcher.Observer.
func (m *Metrics) Decommissioned(runner string, d time.Duration) {
	m.decommissions.WithLabelValues(runner).Inc()
	m.decommissionSeconds.WithLabelValues(runner).Observe(d.Seconds())
}

// DecommissionFailed implements dispatcher.Observer.
func (m *Metrics) DecommissionFailed(runner string) {
	m.decommissionFails.WithLabelValues(runner).Inc()
}

// OrphanFound implements dispatcher.Observer.
func (m *Metrics) OrphanFound(runner string) { m.orphansFound.WithLabelValues(runner).Inc() }

// OrphanDeleted implements dispatcher.Observer.
func (m *Metrics) OrphanDeleted(runner string) { m.orphansDeleted.WithLabelValues(runner).Inc() }

// ObserveRequest records one HTTP attempt; it has the signature of
// coordinator.Observer and of the Clever client's Observer so that it can
// be passed to them directly. endpoint must be a bounded template (no id,
// no token); status 0 means no response was received.
func (m *Metrics) ObserveRequest(api, endpoint string, status int, d time.Duration) {
	st, class := "error", "error"
	if status > 0 {
		st = strconv.Itoa(status)
		class = strconv.Itoa(status/100) + "xx"
	}
	m.requests.WithLabelValues(api, endpoint, st).Inc()
	m.requestSeconds.WithLabelValues(api, endpoint, class).Observe(d.Seconds())
}

// snapshotCollector exports the gauges read from the dispatcher's
// snapshot at scrape time.
type snapshotCollector struct{ m *Metrics }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	jobsDesc            = desc("jobs", "Tracked jobs by runner and phase (kept: resource kept on purpose).", "runner", "phase")
	runnerWeightDesc    = desc("runner_weight_used", "Quota weight counted for the runner's jobs.", "runner")
	resourcesDesc       = desc("tracked_resources", "Resources (hosts) that exist for tracked jobs.", "runner")
	runnerUpDesc        = desc("runner_up", "1 when the runner is polled (not forbidden by its coordinator, not removed).", "runner")
	weightUsedDesc      = desc("weight_used", "Quota weight currently used by all jobs.")
	weightQuotaDesc     = desc("weight_quota", "Configured weighted quota (0: no limit or not yet known).")
	concurrentDesc      = desc("concurrent_jobs", "Jobs counted against concurrent.")
	concurrentMaxDesc   = desc("concurrent_jobs_limit", "The concurrent setting (0: no limit).")
	provisioningDesc    = desc("provisioning_jobs", "Jobs acquired and not yet really started.")
	provisioningMaxDesc = desc("provisioning_jobs_limit", "The paas_max_concurrent_provisioning setting (0: no limit).")
	keptDesc            = desc("kept_resources", "Resources kept on purpose, released from the quota.")
	cyclesDesc          = desc("poll_cycles_total", "Poll cycles run since start.")
	stoppingDesc        = desc("shutting_down", "1 once a graceful shutdown began.")
)

// Describe implements prometheus.Collector.
func (snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		jobsDesc, runnerWeightDesc, resourcesDesc, runnerUpDesc, weightUsedDesc, weightQuotaDesc,
		concurrentDesc, concurrentMaxDesc, provisioningDesc, provisioningMaxDesc, keptDesc,
		cyclesDesc, stoppingDesc,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.snapshot()
	collectRunners(ch, s)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	l := s.Ledger
	gauge(weightUsedDesc, l.WeightUsed)
	gauge(weightQuotaDesc, l.WeightQuota)
	gauge(concurrentDesc, float64(l.Jobs))
	gauge(concurrentMaxDesc, float64(l.MaxJobs))
	gauge(provisioningDesc, float64(l.Provisioning))
	gauge(provisioningMaxDesc, float64(l.MaxProvisioning))
	gauge(keptDesc, float64(l.Kept))
	ch <- prometheus.MustNewConstMetric(cyclesDesc, prometheus.CounterValue, float64(s.PollCycles))
	gauge(stoppingDesc, boolValue(s.Stopping))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// perRunner is what the snapshot says of one runner's jobs.
type perRunner struct {
	phases    map[string]int
	weight    float64
	resources int
}

// collectRunners exports the per-runner gauges: every runner of the
// snapshot, and any runner label its jobs carry, gets every phase.
func collectRunners(ch chan<- prometheus.Metric, s dispatcher.Snapshot) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	runners := map[string]*perRunner{}
	var order []string
	get := func(name string) *perRunner {
		p := runners[name]
		if p == nil {
			p = &perRunner{phases: map[string]int{}}
			runners[name] = p
			order = append(order, name)
		}
		return p
	}
	for _, r := range s.Runners {
		get(r.Name)
		gauge(runnerUpDesc, boolValue(!r.Forbidden && !r.Removed), r.Name)
	}
	for _, j := range s.Jobs {
		p := get(j.Runner)
		p.phases[j.Phase]++
		p.weight += j.Weight
		if j.ResourceID != "" {
			p.resources++
		}
	}
	for _, name := range order {
		p := runners[name]
		for _, ph := range Phases {
			gauge(jobsDesc, float64(p.phases[ph]), name, ph)
		}
		gauge(runnerWeightDesc, p.weight, name)
		gauge(resourcesDesc, float64(p.resources), name)
	}
}
