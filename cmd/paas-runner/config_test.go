package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

// runApp runs the CLI with args and returns its standard output and the
// exit code it would end with.
func runApp(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &errOut
	// urfave/cli calls os.Exit for an ExitCoder unless this is set.
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.Run(append([]string{"paas-runner"}, args...))
	if err == nil {
		return out.String(), 0
	}
	if ec, ok := errors.AsType[cli.ExitCoder](err); ok {
		return out.String(), ec.ExitCode()
	}
	return out.String(), 1
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.toml")
	require.NoError(t, os.WriteFile(broken, []byte(`
concurrent = 0
[[runners]]
  name = "r"
  url = "https://gitlab.example.com"
  token = "brokenRunnerTokenValue"
  executor = "clever-docker"
`), 0o600))
	syntax := filepath.Join(dir, "syntax.toml")
	require.NoError(t, os.WriteFile(syntax, []byte("concurrent = \n"), 0o600))

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{
			name:     "example is valid",
			args:     []string{"config", "check", "../../config.toml.example"},
			wantCode: 0,
			wantOut: []string{
				"../../config.toml.example: OK",
				`1 runner(s): clever-cloud [clever-docker]; quota = 8 × weight of flavor M of runner "clever-cloud"; concurrent = 50, paas_max_concurrent_provisioning = 10`,
			},
		},
		{
			name:     "heptapod README fixture is valid",
			args:     []string{"config", "check", "../../config/testdata/heptapod-multi-tenant.good.toml"},
			wantCode: 0,
			wantOut: []string{
				"../../config/testdata/heptapod-multi-tenant.good.toml: OK",
				`1 runner(s): clever-cloud [clever-docker]; quota = 8 × weight of flavor 3XL of runner "clever-cloud"; concurrent = 50, paas_max_concurrent_provisioning = 10`,
			},
		},
		{
			name:     "every problem, one per line",
			args:     []string{"config", "check", broken},
			wantCode: 2,
			wantOut: []string{
				broken + ": concurrent: must be > 0",
				broken + ": state_file: required",
				broken + ": quota_computation: section is mandatory",
				broken + ": runners[0].cc_orga_id: required when cc_multi_tenant is false",
				broken + ": runners[0].cc_token: required when cc_multi_tenant is false",
				broken + ": 5 problem(s)",
			},
		},
		{
			name:     "syntax error",
			args:     []string{"config", "check", syntax},
			wantCode: 2,
		},
		{
			name:     "missing file",
			args:     []string{"config", "check", filepath.Join(dir, "missing.toml")},
			wantCode: 1,
		},
		{
			name:     "worst verdict of several files wins",
			args:     []string{"config", "check", "../../config.toml.example", broken},
			wantCode: 2,
		},
		{
			name:     "no argument",
			args:     []string{"config", "check"},
			wantCode: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runApp(t, tc.args...)
			require.Equal(t, tc.wantCode, code, out)
			require.NotContains(t, out, "brokenRunnerTokenValue")
			if tc.wantOut != nil {
				require.Equal(t, tc.wantOut, strings.Split(strings.TrimSpace(out), "\n"))
			}
		})
	}
}

func TestConfigCheckVerbose(t *testing.T) {
	out, code := runApp(t, "config", "check", "--verbose", "../../config.toml.example")
	require.Equal(t, 0, code)
	require.Contains(t, out, "../../config.toml.example: note: runners[0]: keys forwarded to the inner runner: cache, custom_build_dir, docker")
}
