package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Executor names accepted in `[[runners]] executor`.
const (
	ExecutorCleverDocker = "clever-docker"
	ExecutorLocalDocker  = "local-docker"
	ExecutorLocalProcess = "local-process"
	// ExecutorFake is the in-memory test executor; only tests may enable it
	// (see AllowFakeExecutor).
	ExecutorFake = "fake"
)

// Inner runner kinds accepted in `[[runners]] inner_runner`.
const (
	// InnerRunnerHeptapod runs `gitlab-runner exec-fetched-job` from
	// heptapod_runner_main_image, as the Heptapod design does.
	InnerRunnerHeptapod = "heptapod"
	// InnerRunnerAgent runs paas-runner's own `exec-job` agent inside the
	// job's image.
	InnerRunnerAgent = "agent"
)

// Seconds is a TOML number of seconds (integer or float), as the Heptapod
// runner writes its intervals.
type Seconds float64

// Duration converts s to a time.Duration.
func (s Seconds) Duration() time.Duration {
	return time.Duration(float64(s) * float64(time.Second))
}

// Config is a whole paas-runner configuration file. Obtain one with Default
// (then decode on top of it) or with Load.
type Config struct {
	// Concurrent caps the number of tracked jobs across all runners.
	Concurrent int `toml:"concurrent"`
	// CheckInterval is the poll interval while under limits.
	CheckInterval Seconds `toml:"check_interval"`
	// JobProgressPollInterval is the poll interval while saturated, and the
	// ceiling of the per-job finish-check back-off.
	JobProgressPollInterval Seconds `toml:"job_progress_poll_interval"`
	// LogLevel is a logrus level name.
	LogLevel string `toml:"log_level"`
	// LogFormat is "text" or "json" ("runner" is accepted as "text").
	LogFormat string `toml:"log_format"`
	// ListenAddress is host:port of the metrics/API HTTP server; empty = off.
	ListenAddress string `toml:"listen_address"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout Seconds `toml:"shutdown_timeout"`
	// StateFile is the JSON file tracked jobs are persisted to.
	StateFile string `toml:"state_file"`
	// ReconcileInterval is the period of the resource reconciliation.
	ReconcileInterval Seconds `toml:"reconcile_interval"`

	// PaasMaxConcurrentProvisioning caps jobs acquired but not yet started.
	PaasMaxConcurrentProvisioning int `toml:"paas_max_concurrent_provisioning"`
	// PaasMinSecondsBetweenLaunches spaces successive launches.
	PaasMinSecondsBetweenLaunches Seconds `toml:"paas_min_seconds_between_launches"`
	// PaasFinishedJobsKeepResources keeps resources of finished jobs.
	PaasFinishedJobsKeepResources bool `toml:"paas_finished_jobs_keep_resources"`
	// PaasDecommissionLaunchFailures deletes resources of failed launches.
	PaasDecommissionLaunchFailures bool `toml:"paas_decommission_launch_failures"`
	// PaasLogStatistics logs the "JSON statistics:" line every poll cycle.
	PaasLogStatistics bool `toml:"paas_log_statistics"`

	// QuotaComputation defines the weighted quota.
	QuotaComputation *QuotaComputation `toml:"quota_computation"`
	// Runners lists the registered runners, in file order.
	Runners []Runner `toml:"runners"`

	// notices are non-fatal remarks of Parse (see Notices).
	notices []string
	// warnings are suspicious but accepted keys (see Warnings).
	warnings []string
	// problems are the unknown keys found by Parse, reported by Validate.
	problems []Problem
}

// QuotaComputation is the `[quota_computation]` table: the weighted quota is
// weight(ReferenceFlavor of ReferenceRunner) × ReferenceJobsCount.
type QuotaComputation struct {
	ReferenceRunner    string `toml:"reference_runner"`
	ReferenceFlavor    string `toml:"reference_flavor"`
	ReferenceJobsCount int    `toml:"reference_jobs_count"`
}

// TraceWatch is `[runners.paas_job_trace_watch]`: real-start detection.
type TraceWatch struct {
	Token          Secret  `toml:"token"`
	TimeoutSeconds Seconds `toml:"timeout_seconds"`
	PollStep       Seconds `toml:"poll_step"`
	// FailureReason is reported on timeout (default runner_system_failure).
	FailureReason string `toml:"failure_reason"`
}

// Flavor is one entry of a static flavor table (`local_flavors`).
type Flavor struct {
	// MemoryMiB is the RAM of the flavor in MiB; weight = GiB^1.25.
	MemoryMiB int `toml:"memory_mib"`
	// CPUs is the number of vCPUs.
	CPUs float64 `toml:"cpus"`
}

// Runner is one `[[runners]]` section.
type Runner struct {
	// Common keys (forwarded to the inner runner unless noted).
	Name     string `toml:"name"`
	URL      string `toml:"url"`
	ID       int64  `toml:"id"`
	Token    Secret `toml:"token"`
	Executor string `toml:"executor"`

	// TraceWatch enables real-start detection (not forwarded).
	TraceWatch *TraceWatch `toml:"paas_job_trace_watch"`
	// HeptapodRunnerMainImage is the base image of the per-job Dockerfile
	// with inner_runner = "heptapod" (not forwarded).
	HeptapodRunnerMainImage string `toml:"heptapod_runner_main_image"`
	// HeptapodPaasRunnerHelperImage is kept for compatibility (forwarded).
	HeptapodPaasRunnerHelperImage string `toml:"heptapod_paas_runner_helper_image"`
	// PaasKeepResourcesForReuseSeconds is kept for compatibility (forwarded).
	PaasKeepResourcesForReuseSeconds Seconds `toml:"paas_keep_resources_for_reuse_seconds"`
	// InnerRunner is "heptapod" (default) or "agent" (not forwarded).
	InnerRunner string `toml:"inner_runner"`
	// AgentImage, when set, is an image holding /usr/bin/paas-runner to copy
	// the agent from (inner_runner = "agent"; not forwarded).
	AgentImage string `toml:"agent_image"`
	// ResourceNamePrefix prefixes resource names (default "hpd-job-"; not
	// forwarded).
	ResourceNamePrefix string `toml:"resource_name_prefix"`

	// Clever Cloud keys (cc_*, never forwarded).
	CCAPIURL                         string            `toml:"cc_api_url"`
	CCZone                           string            `toml:"cc_zone"`
	CCDefaultFlavor                  string            `toml:"cc_default_flavor"`
	CCMaxFlavor                      string            `toml:"cc_max_flavor"`
	CCFlavorContext                  string            `toml:"cc_flavor_context"`
	CCFlavorNamePrefix               string            `toml:"cc_flavor_name_prefix"`
	CCInstanceVariantUUID            string            `toml:"cc_instance_variant_uuid"`
	CCAuthUser                       string            `toml:"cc_auth_user"`
	CCAuthScheme                     string            `toml:"cc_auth_scheme"`
	CCDeploymentRepoTimeout          Seconds           `toml:"cc_deployment_repo_timeout"`
	CCDeploymentRepoWaitStep         Seconds           `toml:"cc_deployment_repo_wait_step"`
	CCExtraEnv                       map[string]string `toml:"cc_extra_env"`
	CCMultiTenant                    bool              `toml:"cc_multi_tenant"`
	CCOrgaID                         string            `toml:"cc_orga_id"`
	CCToken                          Secret            `toml:"cc_token"`
	CCGitlabNamespaceAttributesToken Secret            `toml:"cc_gitlab_namespace_attributes_token"`
	CCOrgaIDAttribute                string            `toml:"cc_orga_id_attribute"`
	CCOrgaTokenAttribute             string            `toml:"cc_orga_token_attribute"`

	// local-docker keys (not forwarded).
	Host string `toml:"host"`
	// LocalFlavors is an optional static flavor table for local-docker and
	// local-process; without it every job weighs 1 (not forwarded).
	LocalFlavors map[string]Flavor `toml:"local_flavors"`
	// LocalDefaultFlavor is the flavor of jobs that ask for none when
	// LocalFlavors is set (not forwarded).
	LocalDefaultFlavor string `toml:"local_default_flavor"`

	// local-process keys (not forwarded).
	// WorkRoot is the directory under which each job gets its work directory.
	WorkRoot string `toml:"work_root"`

	// Extra holds every key of the section that paas-runner does not know,
	// verbatim (e.g. [runners.docker], [runners.cache], custom_build_dir), for
	// forwarding to the inner runner. Filled by Load, which wraps credential
	// strings (see SecretExtraKeys) as Secret so that printing Extra masks
	// them; use ForwardedTable or InnerConfig to get the real values.
	Extra map[string]any `toml:"-"`
}

// ShortID returns the runner's stable short identity, used in resource names
// and state records: the first 12 hex digits of SHA-256(url + "\n" + token).
// Unlike the Heptapod runner's token[:8], it does not collide for `glrt-`
// tokens (reference §12 item 32).
func (r *Runner) ShortID() string {
	sum := sha256.Sum256([]byte(strings.TrimRight(r.URL, "/") + "\n" + r.Token.Reveal()))
	return hex.EncodeToString(sum[:])[:12]
}

// HeptapodName returns the identity the Heptapod runner used for this runner
// (token[:8]), for importing its state files.
func (r *Runner) HeptapodName() string {
	t := r.Token.Reveal()
	if len(t) > 8 {
		return t[:8]
	}
	return t
}

// Label returns the name used for this runner in logs and metric labels:
// its name, or its short id when unnamed.
func (r *Runner) Label() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ShortID()
}

// APIURL returns the coordinator's API base (`url` without trailing slash +
// "/api/v4").
func (r *Runner) APIURL() string {
	return strings.TrimRight(r.URL, "/") + "/api/v4"
}
