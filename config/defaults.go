package config

// Defaults of the Heptapod PAAS Runner code (reference §2.6: the code's names
// and values win over its README) and of gitlab-runner's global keys.
const (
	DefaultConcurrent                    = 50
	DefaultCheckInterval                 = 3
	DefaultJobProgressPollInterval       = 30
	DefaultShutdownTimeout               = 110
	DefaultReconcileInterval             = 300
	DefaultPaasMaxConcurrentProvisioning = 10
	DefaultLogLevel                      = "info"
	DefaultLogFormat                     = "text"

	DefaultHeptapodRunnerMainImage       = "registry.heptapod.net:443/heptapod/heptapod-runner/runner:0.7.0"
	DefaultHeptapodPaasRunnerHelperImage = "registry.heptapod.net/heptapod/heptapod-paas-runner/helper:testing"
	DefaultKeepResourcesForReuseSeconds  = 120
	DefaultResourceNamePrefix            = "hpd-job-"

	DefaultCCAPIURL                 = "https://api.clever-cloud.com/v2"
	DefaultCCZone                   = "par"
	DefaultCCDefaultFlavor          = "M"
	DefaultCCFlavorContext          = "heptapod-runner"
	DefaultCCInstanceVariantUUID    = "70d676a0-a775-4dc9-a43d-3121036e8515"
	DefaultCCAuthUser               = "Jenkins"
	DefaultCCAuthScheme             = "token"
	DefaultCCDeploymentRepoTimeout  = 20
	DefaultCCDeploymentRepoWaitStep = 2
	DefaultCCOrgaIDAttribute        = "cc_orga_id"
	DefaultCCOrgaTokenAttribute     = "cc_orga_token"

	DefaultTraceWatchTimeout       = 300
	DefaultTraceWatchPollStep      = 10
	DefaultTraceWatchFailureReason = "runner_system_failure"

	DefaultLocalDockerHost = "unix:///var/run/docker.sock"
	DefaultWorkRoot        = "/var/lib/paas-runner/jobs"

	// DefaultLocalDefaultFlavor is the flavor of local jobs that ask for none;
	// it is also the only flavor of the implicit local table (see
	// DefaultLocalFlavors).
	DefaultLocalDefaultFlavor = "M"
	// DefaultListenPort is appended to a listen_address given without port,
	// as gitlab-runner does.
	DefaultListenPort = "9252"
)

// DefaultTraceWatch returns the defaults of a `[runners.paas_job_trace_watch]`
// table that is present in the file (the table itself is optional).
func DefaultTraceWatch() *TraceWatch {
	return &TraceWatch{
		TimeoutSeconds: DefaultTraceWatchTimeout,
		PollStep:       DefaultTraceWatchPollStep,
		FailureReason:  DefaultTraceWatchFailureReason,
	}
}

// DefaultLocalFlavors returns the flavor table of local executors that have
// no local_flavors: one flavor "M" of 1 GiB, hence weight 1 for every job,
// as the Heptapod local-docker executor did (reference §9.1).
func DefaultLocalFlavors() map[string]Flavor {
	return map[string]Flavor{DefaultLocalDefaultFlavor: {MemoryMiB: 1024, CPUs: 1}}
}

// Default returns a Config holding every global default. Decode a file on top
// of it; runners get their defaults from DefaultRunner, applied by Load.
func Default() *Config {
	return &Config{
		Concurrent:                     DefaultConcurrent,
		CheckInterval:                  DefaultCheckInterval,
		JobProgressPollInterval:        DefaultJobProgressPollInterval,
		LogLevel:                       DefaultLogLevel,
		LogFormat:                      DefaultLogFormat,
		ShutdownTimeout:                DefaultShutdownTimeout,
		ReconcileInterval:              DefaultReconcileInterval,
		PaasMaxConcurrentProvisioning:  DefaultPaasMaxConcurrentProvisioning,
		PaasDecommissionLaunchFailures: true,
		PaasLogStatistics:              true,
	}
}

// DefaultRunner returns a Runner holding every per-runner default.
// cc_flavor_name_prefix defaults to "<cc_flavor_context>-" and is derived by
// Load once the context is known; `host` of local-docker runners defaults to
// $DOCKER_HOST, else DefaultLocalDockerHost, also applied by Load.
func DefaultRunner() Runner {
	return Runner{
		HeptapodRunnerMainImage:          DefaultHeptapodRunnerMainImage,
		HeptapodPaasRunnerHelperImage:    DefaultHeptapodPaasRunnerHelperImage,
		PaasKeepResourcesForReuseSeconds: DefaultKeepResourcesForReuseSeconds,
		InnerRunner:                      InnerRunnerHeptapod,
		ResourceNamePrefix:               DefaultResourceNamePrefix,
		CCAPIURL:                         DefaultCCAPIURL,
		CCZone:                           DefaultCCZone,
		CCDefaultFlavor:                  DefaultCCDefaultFlavor,
		CCFlavorContext:                  DefaultCCFlavorContext,
		CCInstanceVariantUUID:            DefaultCCInstanceVariantUUID,
		CCAuthUser:                       DefaultCCAuthUser,
		CCAuthScheme:                     DefaultCCAuthScheme,
		CCDeploymentRepoTimeout:          DefaultCCDeploymentRepoTimeout,
		CCDeploymentRepoWaitStep:         DefaultCCDeploymentRepoWaitStep,
		CCOrgaIDAttribute:                DefaultCCOrgaIDAttribute,
		CCOrgaTokenAttribute:             DefaultCCOrgaTokenAttribute,
		WorkRoot:                         DefaultWorkRoot,
		LocalDefaultFlavor:               DefaultLocalDefaultFlavor,
	}
}
