package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// problemLines loads file and returns its validation problems as lines.
func problemLines(t *testing.T, file string) []string {
	t.Helper()
	cfg, err := Load(filepath.Join("testdata", file))
	require.NoError(t, err)
	err = cfg.Validate()
	require.Error(t, err)
	var verr *ValidationError
	require.ErrorAs(t, err, &verr)
	lines := make([]string, len(verr.Problems))
	for i, p := range verr.Problems {
		lines[i] = p.Error()
	}
	return lines
}

func TestBadConfigs(t *testing.T) {
	tests := map[string][]string{
		// Every message that can coexist in one file, asserted in one run.
		"every-problem.bad.toml": {
			"concurent: unknown key",
			"unknown_table: unknown key",
			"quota_computation.reference_runnr: unknown key",
			"runners[0].paas_job_trace_watch.timout_seconds: unknown key",
			"runners[4].local_flavors.tiny.memory: unknown key",
			"concurrent: must be > 0",
			"check_interval: must be > 0",
			"job_progress_poll_interval: must be > 0",
			"shutdown_timeout: must be > 0",
			"reconcile_interval: must be > 0",
			"paas_min_seconds_between_launches: must be >= 0",
			"paas_max_concurrent_provisioning: must be > 0",
			`log_level: "loud" is not one of trace, debug, info, warn, error, fatal, panic`,
			`log_format: "xml" is not one of text, json, runner`,
			"state_file: required",
			`quota_computation.reference_runner: "nobody" names no runner`,
			"quota_computation.reference_flavor: required",
			"quota_computation.reference_jobs_count: must be > 0",
			"runners[0].url: required",
			"runners[0].token: required",
			"runners[0].executor: required",
			`runners[0].inner_runner: "docker" is not one of heptapod, agent`,
			"runners[0].resource_name_prefix: must not be empty",
			"runners[0].paas_keep_resources_for_reuse_seconds: must be >= 0",
			"runners[0].paas_job_trace_watch.token: required when the section is present",
			"runners[0].paas_job_trace_watch.timeout_seconds: must be > 0",
			"runners[0].paas_job_trace_watch.poll_step: must be > 0",
			`runners[0].paas_job_trace_watch.failure_reason: "oops" is not a failure reason a runner may report`,
			"runners[1].url: must be an absolute http or https URL",
			"runners[1].cc_orga_id: required when cc_multi_tenant is false",
			"runners[1].cc_token: required when cc_multi_tenant is false",
			"runners[1].cc_api_url: must be an absolute http or https URL",
			`runners[1].cc_auth_scheme: "basic" is not one of token, bearer`,
			"runners[1].cc_zone: must not be empty",
			"runners[1].cc_default_flavor: must not be empty",
			"runners[1].cc_flavor_context: must not be empty",
			"runners[1].cc_instance_variant_uuid: must not be empty",
			"runners[1].cc_auth_user: must not be empty",
			"runners[1].cc_deployment_repo_timeout: must be > 0",
			"runners[1].cc_deployment_repo_wait_step: must be > 0",
			"runners[2].cc_orga_id_attribute: must not be empty when cc_multi_tenant is true",
			"runners[2].cc_orga_token_attribute: must not be empty when cc_multi_tenant is true",
			`runners[3].executor: "kubernetes" is not one of clever-docker, local-docker, local-process`,
			`runners[3].name: "dup" is also the name of runners[2]`,
			"runners[4].host: must be a unix:// or tcp:// URL",
			"runners[4].local_flavors.tiny.memory_mib: must be > 0",
			"runners[4].local_flavors.tiny.cpus: must be >= 0",
			`runners[4].local_default_flavor: "nope" is not in local_flavors (flavors: tiny)`,
			"runners[5].work_root: must be an absolute path",
			"runners[5].token: same url and token as runners[4]",
			`runners[6].executor: "fake" is not one of clever-docker, local-docker, local-process`,
		},
		"no-quota-no-runners.bad.toml": {
			"quota_computation: section is mandatory",
			"runners: at least one [[runners]] section is required",
		},
		"quota-no-reference.bad.toml": {
			"quota_computation.reference_runner: required",
		},
		"quota-unknown-flavor.bad.toml": {
			`quota_computation.reference_flavor: "XL" is not a flavor of runner "local" (flavors: M)`,
		},
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			require.Equal(t, want, problemLines(t, file))
		})
	}
}

func TestBadConfigsAllCovered(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.toml")
	require.NoError(t, err)
	// 4 validation fixtures (TestBadConfigs) + 2 load-error fixtures
	// (TestLoadErrors): a new fixture must be added to a table.
	require.Len(t, files, 6)
}

func TestValidationErrorFormat(t *testing.T) {
	cfg, err := Load("testdata/no-quota-no-runners.bad.toml")
	require.NoError(t, err)
	err = cfg.Validate()
	require.EqualError(t, err, "quota_computation: section is mandatory\nrunners: at least one [[runners]] section is required")
	var p Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, Problem{Path: "quota_computation", Message: "section is mandatory"}, p)
	require.ErrorIs(t, err, Problem{Path: "runners", Message: "at least one [[runners]] section is required"})
	require.NotErrorIs(t, err, Problem{Path: "runners", Message: "other"})
}

func TestValidateNeverShowsSecrets(t *testing.T) {
	cfg, err := Load("testdata/every-problem.bad.toml")
	require.NoError(t, err)
	require.NotContains(t, cfg.Validate().Error(), "everyProblemToken")
}

func TestFakeExecutor(t *testing.T) {
	const file = `
state_file = "/tmp/s.json"
[quota_computation]
  reference_runner = "fake"
  reference_flavor = "M"
  reference_jobs_count = 1
[[runners]]
  name = "fake"
  url = "http://gitlab.local"
  token = "t"
  executor = "fake"
`
	tests := []struct {
		name  string
		allow bool
		want  string
	}{
		{name: "refused by default", want: `runners[0].executor: "fake" is not one of clever-docker, local-docker, local-process`},
		{name: "accepted by the test hook", allow: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := AllowFakeExecutor
			AllowFakeExecutor = tc.allow
			t.Cleanup(func() { AllowFakeExecutor = old })
			cfg, err := Parse([]byte(file))
			require.NoError(t, err)
			err = cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
		})
	}
}
