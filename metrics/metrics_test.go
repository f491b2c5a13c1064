package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"gitlab.com/paas-runner/paas-runner/dispatcher"
	"gitlab.com/paas-runner/paas-runner/quota"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// sampleSnapshot has two runners and jobs in several phases.
func sampleSnapshot() dispatcher.Snapshot {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	return dispatcher.Snapshot{
		Time:       t0.Add(90 * time.Second),
		PollCycles: 42,
		Ledger: quota.Snapshot{
			WeightQuota: 20, WeightUsed: 7.5, Jobs: 3, MaxJobs: 10, Provisioning: 1, MaxProvisioning: 4, Kept: 1,
		},
		Runners: []dispatcher.RunnerView{
			{Name: "alpha", ID: "aaaaaaaaaaaa", Executor: "fake"},
			{Name: "beta", ID: "bbbbbbbbbbbb", Executor: "clever-docker", Forbidden: true},
		},
		Jobs: []dispatcher.JobView{
			{Runner: "alpha", RunnerID: "aaaaaaaaaaaa", JobID: 1, ProjectID: 7, Flavor: "M", ExpectedWeight: 2.5, Weight: 2.5, Phase: "running", ResourceID: "app_1", AcquiredAt: t0, StartedAt: t0.Add(time.Minute)},
			{Runner: "alpha", RunnerID: "aaaaaaaaaaaa", JobID: 2, ProjectID: 7, ExpectedWeight: 2.5, Weight: 2.5, Phase: "pending", AcquiredAt: t0},
			{Runner: "beta", RunnerID: "bbbbbbbbbbbb", JobID: 3, ProjectID: 8, Flavor: "L", ExpectedWeight: 2.5, Weight: 2.5, Phase: "running", ResourceID: "app_3", AcquiredAt: t0},
			{Runner: "beta", RunnerID: "bbbbbbbbbbbb", JobID: 4, ProjectID: 8, Flavor: "S", ExpectedWeight: 1, Phase: "kept", ResourceID: "app_4", AcquiredAt: t0, FinishedAt: t0.Add(time.Minute)},
		},
	}
}

func TestCollectorReadsSnapshotAtScrapeTime(t *testing.T) {
	reg := prometheus.NewRegistry()
	snap := dispatcher.Snapshot{}
	m, err := New(reg, func() dispatcher.Snapshot { return snap })
	require.NoError(t, err)
	require.NotNil(t, m)

	empty := `
# HELP paas_runner_weight_used Quota weight currently used by all jobs.
# TYPE paas_runner_weight_used gauge
paas_runner_weight_used 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(empty), "paas_runner_weight_used"))

	snap = sampleSnapshot()
	snap.Stopping = true
	want := `
# HELP paas_runner_jobs Tracked jobs by runner and phase (kept: resource kept on purpose).
# TYPE paas_runner_jobs gauge
paas_runner_jobs{phase="decommissioning",runner="alpha"} 0
paas_runner_jobs{phase="kept",runner="alpha"} 0
paas_runner_jobs{phase="launched",runner="alpha"} 0
paas_runner_jobs{phase="pending",runner="alpha"} 1
paas_runner_jobs{phase="provisioned",runner="alpha"} 0
paas_runner_jobs{phase="running",runner="alpha"} 1
paas_runner_jobs{phase="decommissioning",runner="beta"} 0
paas_runner_jobs{phase="kept",runner="beta"} 1
paas_runner_jobs{phase="launched",runner="beta"} 0
paas_runner_jobs{phase="pending",runner="beta"} 0
paas_runner_jobs{phase="provisioned",runner="beta"} 0
paas_runner_jobs{phase="running",runner="beta"} 1
# HELP paas_runner_runner_weight_used Quota weight counted for the runner's jobs.
# TYPE paas_runner_runner_weight_used gauge
paas_runner_runner_weight_used{runner="alpha"} 5
paas_runner_runner_weight_used{runner="beta"} 2.5
# HELP paas_runner_tracked_resources Resources (hosts) that exist for tracked jobs.
# TYPE paas_runner_tracked_resources gauge
paas_runner_tracked_resources{runner="alpha"} 1
paas_runner_tracked_resources{runner="beta"} 2
# HELP paas_runner_runner_up 1 when the runner is polled (not forbidden by its coordinator, not removed).
# TYPE paas_runner_runner_up gauge
paas_runner_runner_up{runner="alpha"} 1
paas_runner_runner_up{runner="beta"} 0
# HELP paas_runner_weight_used Quota weight currently used by all jobs.
# TYPE paas_runner_weight_used gauge
paas_runner_weight_used 7.5
# HELP paas_runner_weight_quota Configured weighted quota (0: no limit or not yet known).
# TYPE paas_runner_weight_quota gauge
paas_runner_weight_quota 20
# HELP paas_runner_concurrent_jobs Jobs counted against concurrent.
# TYPE paas_runner_concurrent_jobs gauge
paas_runner_concurrent_jobs 3
# HELP paas_runner_concurrent_jobs_limit The concurrent setting (0: no limit).
# TYPE paas_runner_concurrent_jobs_limit gauge
paas_runner_concurrent_jobs_limit 10
# HELP paas_runner_provisioning_jobs Jobs acquired and not yet really started.
# TYPE paas_runner_provisioning_jobs gauge
paas_runner_provisioning_jobs 1
# HELP paas_runner_provisioning_jobs_limit The paas_max_concurrent_provisioning setting (0: no limit).
# TYPE paas_runner_provisioning_jobs_limit gauge
paas_runner_provisioning_jobs_limit 4
# HELP paas_runner_kept_resources Resources kept on purpose, released from the quota.
# TYPE paas_runner_kept_resources gauge
paas_runner_kept_resources 1
# HELP paas_runner_poll_cycles_total Poll cycles run since start.
# TYPE paas_runner_poll_cycles_total counter
paas_runner_poll_cycles_total 42
# HELP paas_runner_shutting_down 1 once a graceful shutdown began.
# TYPE paas_runner_shutting_down gauge
paas_runner_shutting_down 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"paas_runner_jobs", "paas_runner_runner_weight_used", "paas_runner_tracked_resources", "paas_runner_runner_up",
		"paas_runner_weight_used", "paas_runner_weight_quota", "paas_runner_concurrent_jobs", "paas_runner_concurrent_jobs_limit",
		"paas_runner_provisioning_jobs", "paas_runner_provisioning_jobs_limit", "paas_runner_kept_resources", "paas_runner_poll_cycles_total", "paas_runner_shutting_down"))
}

func TestObserverEvents(t *testing.T) {
	cases := []struct {
		name   string
		events func(m *Metrics)
		metric string
		want   string
	}{
		{
			name: "acquisitions by runner and flavor",
			events: func(m *Metrics) {
				m.JobAcquired("alpha", "M")
				m.JobAcquired("alpha", "M")
				m.JobAcquired("alpha", "default")
				m.JobAcquired("beta", "XL")
			},
			metric: "paas_runner_job_acquisitions_total",
			want: `
# HELP paas_runner_job_acquisitions_total Jobs acquired from a coordinator and admitted by the quota, by runner and flavor.
# TYPE paas_runner_job_acquisitions_total counter
paas_runner_job_acquisitions_total{flavor="M",runner="alpha"} 2
paas_runner_job_acquisitions_total{flavor="default",runner="alpha"} 1
paas_runner_job_acquisitions_total{flavor="XL",runner="beta"} 1
`,
		},
		{
			name: "launch failures by reason, empty reason named",
			events: func(m *Metrics) {
				m.LaunchFailed("alpha", "runner_system_failure")
				m.LaunchFailed("alpha", "runner_system_failure")
				m.LaunchFailed("alpha", "canceled")
				m.LaunchFailed("alpha", "")
			},
			metric: "paas_runner_job_launch_failures_total",
			want: `
# HELP paas_runner_job_launch_failures_total Jobs that could not be launched, by the failure_reason reported to the coordinator (or canceled).
# TYPE paas_runner_job_launch_failures_total counter
paas_runner_job_launch_failures_total{failure_reason="canceled",runner="alpha"} 1
paas_runner_job_launch_failures_total{failure_reason="runner_system_failure",runner="alpha"} 2
paas_runner_job_launch_failures_total{failure_reason="unknown_failure",runner="alpha"} 1
`,
		},
		{
			name: "weight-seconds add up per runner",
			events: func(m *Metrics) {
				m.JobFinished("alpha", 30)
				m.JobFinished("alpha", 12.5)
				m.JobFinished("beta", 0)
			},
			metric: "paas_runner_weight_seconds_total",
			want: `
# HELP paas_runner_weight_seconds_total Cost: quota weight multiplied by running time of the finished jobs, in weight-seconds.
# TYPE paas_runner_weight_seconds_total counter
paas_runner_weight_seconds_total{runner="alpha"} 42.5
paas_runner_weight_seconds_total{runner="beta"} 0
`,
		},
		{
			name: "requests by api, endpoint and status; no response is error",
			events: func(m *Metrics) {
				m.ObserveRequest("coordinator", "POST /jobs/request", 201, time.Millisecond)
				m.ObserveRequest("coordinator", "POST /jobs/request", 204, time.Millisecond)
				m.ObserveRequest("coordinator", "POST /jobs/request", 204, time.Millisecond)
				m.ObserveRequest("clever", "GET /v2/organisations/{orga}/applications/{app}", 0, time.Second)
			},
			metric: "paas_runner_api_requests_total",
			want: `
# HELP paas_runner_api_requests_total HTTP request attempts to the coordinators and PaaS APIs, by api, endpoint template and status ("error": no response).
# TYPE paas_runner_api_requests_total counter
paas_runner_api_requests_total{api="clever",endpoint="GET /v2/organisations/{orga}/applications/{app}",status="error"} 1
paas_runner_api_requests_total{api="coordinator",endpoint="POST /jobs/request",status="201"} 1
paas_runner_api_requests_total{api="coordinator",endpoint="POST /jobs/request",status="204"} 2
`,
		},
		{
			name: "decommissions, failures and orphans",
			events: func(m *Metrics) {
				m.Decommissioned("alpha", time.Second)
				m.DecommissionFailed("alpha")
				m.DecommissionFailed("alpha")
				m.OrphanFound("alpha")
				m.OrphanDeleted("alpha")
			},
			metric: "paas_runner_decommission_failures_total",
			want: `
# HELP paas_runner_decommission_failures_total Failed resource deletion attempts (each is retried).
# TYPE paas_runner_decommission_failures_total counter
paas_runner_decommission_failures_total{runner="alpha"} 2
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := New(reg, nil)
			require.NoError(t, err)
			tc.events(m)
			require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(tc.want), tc.metric))
		})
	}
}

func TestHistogramsAndLaunches(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil)
	require.NoError(t, err)
	m.LaunchSucceeded("alpha", 3*time.Second)
	m.LaunchSucceeded("alpha", 90*time.Second)
	m.JobStarted("alpha", 95*time.Second)
	m.Decommissioned("alpha", 2*time.Second)

	require.InDelta(t, 2, testutil.ToFloat64(m.launches.WithLabelValues("alpha")), 0)
	count, err := testutil.GatherAndCount(reg, "paas_runner_provisioning_duration_seconds",
		"paas_runner_job_start_delay_seconds", "paas_runner_decommission_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 3, count, "one series per histogram")
	c, err := Counters(reg)
	require.NoError(t, err)
	require.InDelta(t, 2, c[`paas_runner_provisioning_duration_seconds_count{runner="alpha"}`], 0)
	require.InDelta(t, 1, c[`paas_runner_job_start_delay_seconds_count{runner="alpha"}`], 0)
	require.InDelta(t, 2, c[`paas_runner_job_launches_total{runner="alpha"}`], 0)
}

func TestRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := New(reg, nil)
	require.NoError(t, err)
	_, err = New(reg, nil)
	require.Error(t, err, "a second set of the same metrics must be refused")
}

func TestPromlintClean(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, sampleSnapshot)
	require.NoError(t, err)
	// Every vector gets a series, so that the linter sees every family.
	m.JobAcquired("alpha", "M")
	m.LaunchSucceeded("alpha", time.Second)
	m.LaunchFailed("alpha", "script_failure")
	m.JobStarted("alpha", time.Second)
	m.JobFinished("alpha", 3)
	m.Decommissioned("alpha", time.Second)
	m.DecommissionFailed("alpha")
	m.OrphanFound("alpha")
	m.OrphanDeleted("alpha")
	m.ObserveRequest("coordinator", "POST /jobs/request", 204, time.Millisecond)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 27, "every family present")
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
}
