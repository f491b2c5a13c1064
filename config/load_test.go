package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.toml")
	require.NoError(t, err)
	require.Len(t, files, 3)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := LoadAndValidate(f)
			require.NoError(t, err)
			require.NotEmpty(t, cfg.Runners)
		})
	}
}

func TestLoadHeptapodREADMEExamples(t *testing.T) {
	dockerTable := map[string]any{
		"helper_image":                 "registry.heptapod.net/heptapod/heptapod-runner/helper:x86_64-latest",
		"tls_verify":                   false,
		"image":                        "debian:bullseye",
		"privileged":                   false,
		"disable_entrypoint_overwrite": false,
		"oom_kill_disable":             false,
		"disable_cache":                false,
		"volumes":                      []any{"/cache"},
		"shm_size":                     int64(0),
	}
	tests := []struct {
		file        string
		multiTenant bool
		orgaID      string
		ccToken     string
		nsToken     string
		runnerToken string
		cache       map[string]any
	}{
		{
			file:        "heptapod-single-orga.good.toml",
			orgaID:      "orga_11111111-2222-4333-8444-555555555555",
			ccToken:     "fixt-cc-token-single-0000-aaaaaaaaaaaa",
			runnerToken: "fixtRunnerTok1single",
			cache: map[string]any{
				"s3": map[string]any{
					"ServerAddress": "cellar-c2.services.clever-cloud.com",
					"AccessKey":     "fixtS3AccessKeySingle",
					"SecretKey":     "fixtS3SecretKeySingleValue0123456789abcd",
					"BucketName":    "heptapod-ci",
				},
				"gcs": map[string]any{},
			},
		},
		{
			file:        "heptapod-multi-tenant.good.toml",
			multiTenant: true,
			nsToken:     "fixtNamespaceAttrTok2",
			runnerToken: "fixtRunnerTok2multi",
			cache:       map[string]any{"s3": map[string]any{}, "gcs": map[string]any{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := LoadAndValidate(filepath.Join("testdata", tc.file))
			require.NoError(t, err)

			require.Equal(t, "/srv/heptapod-runner/paas-runner-state.json", cfg.StateFile)
			require.Equal(t, &QuotaComputation{ReferenceRunner: "clever-cloud", ReferenceFlavor: "3XL", ReferenceJobsCount: 8}, cfg.QuotaComputation)
			require.Equal(t, DefaultConcurrent, cfg.Concurrent)
			require.Len(t, cfg.Runners, 1)

			r := cfg.Runners[0]
			require.Same(t, &cfg.Runners[0], cfg.RunnerByName("clever-cloud"))
			require.Equal(t, "clever-cloud", r.Name)
			require.Equal(t, "https://heptapod.example.com", r.URL)
			require.Equal(t, "https://heptapod.example.com/api/v4", r.APIURL())
			require.Equal(t, tc.runnerToken, r.Token.Reveal())
			require.Equal(t, ExecutorCleverDocker, r.Executor)
			require.Equal(t, tc.multiTenant, r.CCMultiTenant)
			require.Equal(t, tc.orgaID, r.CCOrgaID)
			require.Equal(t, tc.ccToken, r.CCToken.Reveal())
			require.Equal(t, tc.nsToken, r.CCGitlabNamespaceAttributesToken.Reveal())
			require.Equal(t, map[string]string{"CC_ENABLE_HEPTAPOD_RUNNER": "true"}, r.CCExtraEnv)
			// Per-runner defaults survive decoding.
			require.Equal(t, DefaultCCAPIURL, r.CCAPIURL)
			require.Equal(t, DefaultCCZone, r.CCZone)
			require.Equal(t, DefaultCCFlavorContext+"-", r.CCFlavorNamePrefix)
			require.Equal(t, DefaultCCOrgaIDAttribute, r.CCOrgaIDAttribute)
			require.Equal(t, DefaultHeptapodRunnerMainImage, r.HeptapodRunnerMainImage)
			require.Nil(t, r.TraceWatch)
			// Unknown keys are kept verbatim for the inner runner.
			require.Equal(t, map[string]any{
				"custom_build_dir": map[string]any{},
				"cache":            tc.cache,
				"docker":           dockerTable,
			}, r.ForwardedTable())
		})
	}
}

func TestLoadAllKeys(t *testing.T) {
	cfg, err := LoadAndValidate("testdata/all-keys.good.toml")
	require.NoError(t, err)

	want := &Config{
		Concurrent:                     12,
		CheckInterval:                  5,
		JobProgressPollInterval:        20,
		LogLevel:                       "debug",
		LogFormat:                      "json",
		ListenAddress:                  "127.0.0.1:9252",
		ShutdownTimeout:                90,
		StateFile:                      "/var/lib/paas-runner/state.json",
		ReconcileInterval:              600,
		PaasMaxConcurrentProvisioning:  4,
		PaasMinSecondsBetweenLaunches:  0.5,
		PaasFinishedJobsKeepResources:  false,
		PaasDecommissionLaunchFailures: false,
		PaasLogStatistics:              false,
		QuotaComputation:               &QuotaComputation{ReferenceRunner: "clever", ReferenceFlavor: "M", ReferenceJobsCount: 10},
	}
	got := *cfg
	got.Runners, got.notices = nil, nil
	require.Equal(t, want, &got)

	require.Len(t, cfg.Runners, 3)
	clever := cfg.Runners[0]
	clever.Extra = nil
	require.Equal(t, Runner{
		Name:                             "clever",
		URL:                              "https://heptapod.example.com/",
		ID:                               42,
		Token:                            "allkeysRunnerTokenClever",
		Executor:                         ExecutorCleverDocker,
		TraceWatch:                       &TraceWatch{Token: "allkeysTraceWatchToken", TimeoutSeconds: 120, PollStep: 5, FailureReason: "runner_system_failure"},
		HeptapodRunnerMainImage:          "registry.example.com/runner:1",
		HeptapodPaasRunnerHelperImage:    "registry.example.com/helper:1",
		PaasKeepResourcesForReuseSeconds: 60,
		InnerRunner:                      InnerRunnerHeptapod,
		ResourceNamePrefix:               "job-",
		CCAPIURL:                         "https://api.example.com/v2",
		CCZone:                           "rbx",
		CCDefaultFlavor:                  "S",
		CCMaxFlavor:                      "XL",
		CCFlavorContext:                  "ctx",
		CCFlavorNamePrefix:               "ctx-",
		CCInstanceVariantUUID:            "00000000-0000-4000-8000-000000000000",
		CCAuthUser:                       "Robot",
		CCAuthScheme:                     "bearer",
		CCDeploymentRepoTimeout:          40,
		CCDeploymentRepoWaitStep:         4,
		CCExtraEnv:                       map[string]string{"CC_ENABLE_HEPTAPOD_RUNNER": "true"},
		CCOrgaID:                         "orga_allkeys",
		CCToken:                          "allkeysCleverTokenValue",
		CCGitlabNamespaceAttributesToken: "allkeysNamespaceAttrToken",
		CCOrgaIDAttribute:                "my_orga",
		CCOrgaTokenAttribute:             "my_orga_token",
		LocalDefaultFlavor:               DefaultLocalDefaultFlavor,
		WorkRoot:                         DefaultWorkRoot,
	}, clever)

	docker := cfg.Runners[1]
	require.Equal(t, "tcp://127.0.0.1:2375", docker.Host)
	require.Equal(t, InnerRunnerAgent, docker.InnerRunner)
	require.Equal(t, "registry.example.com/paas-runner:1", docker.AgentImage)
	require.Equal(t, map[string]Flavor{"small": {MemoryMiB: 1024, CPUs: 1}, "big": {MemoryMiB: 4096, CPUs: 2}}, docker.LocalFlavors)
	require.Equal(t, "small", docker.LocalDefaultFlavor)
	require.Nil(t, docker.Extra)

	process := cfg.Runners[2]
	require.Equal(t, "/tmp/paas-runner-jobs", process.WorkRoot)
	require.Equal(t, DefaultLocalFlavors(), process.StaticFlavors())

	require.Equal(t, []string{
		"session_server: gitlab-runner key ignored by paas-runner",
		"runners[0]: keys forwarded to the inner runner: cache, custom_build_dir, docker, environment, limit",
	}, cfg.Notices())
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name      string
		toml      string
		dockerEnv string
		check     func(t *testing.T, c *Config)
	}{
		{
			name: "global defaults",
			toml: `state_file = "/tmp/s.json"`,
			check: func(t *testing.T, c *Config) {
				want := Default()
				want.StateFile = "/tmp/s.json"
				want.Runners = []Runner{}
				require.Equal(t, want, c)
			},
		},
		{
			name: "runner and trace-watch defaults",
			toml: `[[runners]]
  executor = "clever-docker"
  cc_flavor_context = "other"
  [runners.paas_job_trace_watch]
    token = "tw"`,
			check: func(t *testing.T, c *Config) {
				want := DefaultRunner()
				want.Executor = ExecutorCleverDocker
				want.CCFlavorContext = "other"
				want.CCFlavorNamePrefix = "other-"
				want.TraceWatch = DefaultTraceWatch()
				want.TraceWatch.Token = "tw"
				require.Equal(t, []Runner{want}, c.Runners)
			},
		},
		{
			name: "explicit empty flavor name prefix is kept",
			toml: `[[runners]]
  cc_flavor_name_prefix = ""`,
			check: func(t *testing.T, c *Config) {
				require.Empty(t, c.Runners[0].CCFlavorNamePrefix)
			},
		},
		{
			name:      "local-docker host from DOCKER_HOST",
			toml:      `[[runners]]` + "\n" + `executor = "local-docker"`,
			dockerEnv: "tcp://10.0.0.1:2376",
			check: func(t *testing.T, c *Config) {
				require.Equal(t, "tcp://10.0.0.1:2376", c.Runners[0].Host)
			},
		},
		{
			name: "local-docker host default",
			toml: `[[runners]]` + "\n" + `executor = "local-docker"`,
			check: func(t *testing.T, c *Config) {
				require.Equal(t, DefaultLocalDockerHost, c.Runners[0].Host)
			},
		},
		{
			name: "host left alone for other executors",
			toml: `[[runners]]` + "\n" + `executor = "local-process"`,
			check: func(t *testing.T, c *Config) {
				require.Empty(t, c.Runners[0].Host)
			},
		},
		{
			name: "gitlab-runner zero values mean default",
			toml: "check_interval = 0\nshutdown_timeout = 0\nlisten_address = \"localhost\"",
			check: func(t *testing.T, c *Config) {
				require.InDelta(t, float64(Seconds(DefaultCheckInterval)), float64(c.CheckInterval), 1e-12)
				require.InDelta(t, float64(Seconds(DefaultShutdownTimeout)), float64(c.ShutdownTimeout), 1e-12)
				require.Equal(t, "localhost:9252", c.ListenAddress)
				require.Len(t, c.Notices(), 2)
			},
		},
		{
			name: "inline runners array",
			toml: `runners = [{ name = "a", limit = 2 }]`,
			check: func(t *testing.T, c *Config) {
				require.Equal(t, "a", c.Runners[0].Name)
				require.Equal(t, map[string]any{"limit": int64(2)}, c.Runners[0].Extra)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.dockerEnv)
			c, err := Parse([]byte(tc.toml))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestHeptapodREADMEKeys(t *testing.T) {
	const file = `
concurrency = 4
job_progress_interval = 10
pass_decommision_launched_failures = false
state_file = "/tmp/s.json"
[job_trace_watch]
  token = "readmeTraceToken"
  timout_seconds = 20
[quota_computation]
  reference_runner = "r"
  reference_flavor = "M"
  reference_jobs_count = 1
[[runners]]
  name = "r"
  url = "http://gitlab.local"
  token = "t"
  executor = "local-process"
`
	cfg, err := Parse([]byte(file))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	require.Equal(t, DefaultConcurrent, cfg.Concurrent)
	require.Equal(t, []string{
		"concurrency: ignored (a key of the Heptapod README that the Heptapod runner never read); use concurrent",
		"job_progress_interval: ignored (a key of the Heptapod README that the Heptapod runner never read); use job_progress_poll_interval",
		"pass_decommision_launched_failures: ignored (a key of the Heptapod README that the Heptapod runner never read); use paas_decommission_launch_failures",
		"job_trace_watch: ignored (a key of the Heptapod README that the Heptapod runner never read); use [runners.paas_job_trace_watch]",
	}, cfg.Warnings())
	require.NotContains(t, fmt.Sprint(cfg.Warnings(), cfg.Notices()), "readmeTraceToken")
}

func TestLoadErrors(t *testing.T) {
	tests := map[string]string{
		"type-error.bad.toml":         `decode config: toml: line 1 (last key "concurrent"): incompatible types`,
		"runners-not-tables.bad.toml": "decode config: runners[0]: must be a table",
		"missing.toml":                "read config: open testdata/missing.toml: no such file or directory",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", file))
			require.ErrorContains(t, err, want)
		})
	}
	t.Run("syntax", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "c.toml")
		require.NoError(t, os.WriteFile(p, []byte("token = \"secretvalue\n"), 0o600))
		_, err := Load(p)
		require.ErrorContains(t, err, "parse toml")
		require.NotContains(t, err.Error(), "secretvalue")
	})
}
