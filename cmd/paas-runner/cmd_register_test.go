package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the register/verify/unregister tests")

const (
	glrtToken  = "glrt-t1_RegisterTestToken0001"
	glrtToken2 = "glrt-t2_RegisterTestToken0002"
)

// runRegisterApp runs the CLI with stdin and args; it returns standard
// output and the error the app ended with (nil for exit 0).
func runRegisterApp(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Reader = strings.NewReader(stdin)
	app.Writer = &out
	app.ErrWriter = &errOut
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.Run(append([]string{"paas-runner"}, args...))
	return out.String() + errOut.String(), err
}

func startFake(t *testing.T, opts gitlabfake.Options) *gitlabfake.Server {
	t.Helper()
	s := gitlabfake.New(opts).Start()
	t.Cleanup(s.Close)
	return s
}

// golden compares got with testdata/register/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "register", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(got), 0o644))
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "run with -update to create %s", p)
	require.Equal(t, string(want), got)
}

// normalize replaces run-specific values (fake URL, issued tokens, ids).
func normalize(s string, repl ...string) string {
	return strings.NewReplacer(repl...).Replace(s)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

func requireMode0600(t *testing.T, p string) {
	t.Helper()
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

// configCheckPasses fills the placeholders a user must fill and runs
// `paas-runner config check`.
func configCheckPasses(t *testing.T, path string) {
	t.Helper()
	text := readFile(t, path)
	text = strings.ReplaceAll(text, `# cc_orga_id = "orga_00000000-0000-0000-0000-000000000000"`, `cc_orga_id = "orga_12345678-0000-4000-8000-000000000000"`)
	text = strings.ReplaceAll(text, `# cc_token = "CHANGE-ME"`, `cc_token = "a-clever-token"`)
	filled := filepath.Join(t.TempDir(), "filled.toml")
	require.NoError(t, os.WriteFile(filled, []byte(text), 0o600))
	out, err := runRegisterApp(t, "", "config", "check", filled)
	require.NoError(t, err, out)
}

func TestRegisterLegacyCreatesConfig(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	cfg := filepath.Join(t.TempDir(), "config.toml")
	out, err := runRegisterApp(t, "", "register", cfg, "--non-interactive", "--url", fake.URL(),
		"--registration-token", gitlabfake.DefaultRegistrationToken, "--name", "eu-1", "--executor", "clever-docker",
		"--state-file", "/var/lib/paas-runner/state.json", "--concurrent", "8", "--tag-list", "clever, big", "--paused")
	require.NoError(t, err, out)
	require.NotContains(t, out, gitlabfake.DefaultRegistrationToken)

	recs := fake.Recorded("POST /runners")
	require.Len(t, recs, 1)
	var body map[string]any
	require.NoError(t, json.Unmarshal(recs[0].Body, &body))
	info := body["info"].(map[string]any)
	require.Equal(t, "paas-runner", info["name"])
	delete(body, "info")
	require.Equal(t, map[string]any{
		"token": gitlabfake.DefaultRegistrationToken, "description": "eu-1",
		"paused": true, "locked": true, "run_untagged": false, "tag_list": []any{"clever", "big"},
	}, body)
	require.Equal(t, 1, fake.TotalRequests())

	runners := fake.Runners()
	require.Len(t, runners, 1)
	require.True(t, runners[0].Paused)
	got := readFile(t, cfg)
	require.Contains(t, got, runners[0].Token)
	golden(t, "legacy-new.toml", normalize(got, fake.URL(), "https://gitlab.example.test", runners[0].Token, "ISSUED-TOKEN"))
	requireMode0600(t, cfg)
	_, err = os.Stat(coordinator.SystemIDPath(cfg))
	require.ErrorIs(t, err, os.ErrNotExist, "legacy registration needs no system id")
	configCheckPasses(t, cfg)
}

const existingConfig = `# Our production runner: do not touch.
state_file = "/srv/paas/state.json"   # kept on the data disk
concurrent = 4

[[runners]]
  # first runner
  name = "local"
  url = "https://gitlab.example.test"
  token = "glrt-t3_AlreadyThere0000"
  executor = "local-process"
  [runners.custom_build_dir]

# quota last, on purpose
[quota_computation]
  reference_runner = "local"
  reference_flavor = "M"
  reference_jobs_count = 4`

func TestRegisterGlrtAppendsToExisting(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	id := fake.AddRunner(glrtToken)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(existingConfig), 0o644))

	out, err := runRegisterApp(t, "", "register", cfg, "-n", "--url", fake.URL(), "--token", glrtToken,
		"--name", "docker", "--executor", "local-docker")
	require.NoError(t, err, out)
	require.NotContains(t, out, glrtToken)

	sysID := strings.TrimSpace(readFile(t, coordinator.SystemIDPath(cfg)))
	requireMode0600(t, coordinator.SystemIDPath(cfg))
	recs := fake.Recorded("")
	require.Len(t, recs, 1)
	require.Equal(t, "POST", recs[0].Method)
	require.Equal(t, "/runners/verify", recs[0].Endpoint)
	var body struct {
		Token    string         `json:"token"`
		SystemID string         `json:"system_id"`
		Info     map[string]any `json:"info"`
	}
	require.NoError(t, json.Unmarshal(recs[0].Body, &body))
	require.Equal(t, glrtToken, body.Token)
	require.Equal(t, sysID, body.SystemID)
	require.Equal(t, "paas-runner", body.Info["name"])
	r, _ := fake.RunnerByToken(glrtToken)
	require.Contains(t, r.Managers, sysID)

	got := readFile(t, cfg)
	require.True(t, strings.HasPrefix(got, existingConfig+"\n"), "existing text kept byte for byte")
	require.Contains(t, got, "  id = "+itoa(id)+"\n")
	golden(t, "glrt-append.toml", normalize(got, fake.URL(), "https://gitlab.example.test", "id = "+itoa(id), "id = 1001"))
	requireMode0600(t, cfg)
	configCheckPasses(t, cfg)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestRegisterFailuresWriteNothing(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	fake.AddRunner(glrtToken)
	disabled := startFake(t, gitlabfake.Options{LegacyRegistrationDisabled: true})
	closed := gitlabfake.New(gitlabfake.Options{}).Start()
	closed.Close()
	tests := []struct {
		name    string
		url     string
		args    []string
		wantErr string
	}{
		{"legacy token rejected", fake.URL(), []string{"--registration-token", "GR1348941wrongtoken"}, "rejected the token (403"},
		{"legacy flow disabled", disabled.URL(), []string{"--registration-token", gitlabfake.DefaultRegistrationToken}, "410 Gone"},
		{"glrt token rejected", fake.URL(), []string{"--token", "glrt-t1_UnknownToken9999"}, "rejected the token (403"},
		{"coordinator unreachable", closed.URL(), []string{"--token", glrtToken}, "unreachable"},
		{"server-side flag with glrt", fake.URL(), []string{"--token", glrtToken, "--tag-list", "x"}, "--tag-list cannot be used with a glrt- token"},
		{"bad url", "ftp://x", []string{"--token", glrtToken}, "--url: must be an absolute"},
		{"missing token", fake.URL(), nil, "--token is required with --non-interactive"},
		{"duplicate name", fake.URL(), []string{"--token", glrtToken, "--name", "local"}, `runner named "local" is already`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, existing := range []bool{true, false} {
				dir := t.TempDir()
				cfg := filepath.Join(dir, "config.toml")
				if existing {
					require.NoError(t, os.WriteFile(cfg, []byte(existingConfig), 0o644))
				} else if tc.name == "duplicate name" {
					continue
				}
				args := append([]string{"register", cfg, "-n", "--url", tc.url, "--executor", "local-process"}, tc.args...)
				if !strings.Contains(strings.Join(tc.args, " "), "--name") {
					args = append(args, "--name", "new")
				}
				out, err := runRegisterApp(t, "", args...)
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				for _, secret := range []string{glrtToken, "GR1348941wrongtoken", gitlabfake.DefaultRegistrationToken, "glrt-t1_UnknownToken9999"} {
					require.NotContains(t, err.Error()+out, secret)
				}
				entries, rerr := os.ReadDir(dir)
				require.NoError(t, rerr)
				if existing {
					require.Equal(t, existingConfig, readFile(t, cfg), "file byte-identical")
					require.Len(t, entries, 1, "no temp file, no system id left behind")
				} else {
					require.Empty(t, entries, "nothing written")
				}
			}
		})
	}
}

func TestRegisterInteractive(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	fake.AddRunner(glrtToken)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	stdin := strings.Join([]string{
		"",          // state file: default
		"zero", "3", // concurrent: invalid then valid
		"gitlab.example", // URL without scheme: re-asked
		fake.URL(),
		glrtToken,
		"proc-1",
		"docker-machine", "local-process", // executor: invalid then valid
	}, "\n") + "\n"
	out, err := runRegisterApp(t, stdin, "register", cfg)
	require.NoError(t, err, out)
	require.Equal(t, 3, strings.Count(out, "Invalid value"), out)
	require.Contains(t, out, "Executors:")
	require.NotContains(t, out, glrtToken)
	golden(t, "interactive-new.toml", normalize(readFile(t, cfg), fake.URL(), "https://gitlab.example.test",
		"id = "+itoa(fake.Runners()[0].ID), "id = 1001"))
	configCheckPasses(t, cfg)

	// Input ends before a valid answer: error, nothing written.
	cfg2 := filepath.Join(t.TempDir(), "config.toml")
	_, err = runRegisterApp(t, "\n3\nnot-a-url\n", "register", cfg2)
	require.ErrorContains(t, err, "no valid value for --url")
	_, serr := os.Stat(cfg2)
	require.ErrorIs(t, serr, os.ErrNotExist)
}

// threeRunners is a config with a glrt runner, a legacy runner and a
// runner whose token the coordinator does not know.
const threeRunners = `state_file = "/srv/paas/state.json"

[quota_computation]
  reference_runner = "glrt"
  reference_flavor = "M"
  reference_jobs_count = 2

# The created-runner flow.
[[runners]]
  name = "glrt"
  url = "FAKE"
  token = "GLRT"
  executor = "local-process"

# Revoked last week.
[[runners]]
  name = "revoked"
  url = "FAKE"
  token = "glrt-t1_RevokedToken0000"
  executor = "local-docker"
  [runners.docker]
    image = """
[[runners]]
"""
  # still part of "revoked"

# Registered with a registration token.
[[runners]]
  name = "legacy"
  url = "FAKE"
  token = "LEGACY"
  executor = "local-process"
`

func writeThreeRunners(t *testing.T, fake *gitlabfake.Server, legacy string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	text := normalize(threeRunners, "FAKE", fake.URL(), "GLRT", glrtToken, "LEGACY", legacy)
	require.NoError(t, os.WriteFile(cfg, []byte(text), 0o600))
	return cfg
}

func legacyRunner(t *testing.T, fake *gitlabfake.Server) string {
	t.Helper()
	r, err := coordinator.New(fake.URL(), gitlabfake.DefaultRegistrationToken, coordinator.Options{}).
		Register(t.Context(), coordinator.RegisterOptions{Description: "legacy"})
	require.NoError(t, err)
	return r.Token.Reveal()
}

func TestVerify(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	fake.AddRunner(glrtToken)
	legacy := legacyRunner(t, fake)
	cfg := writeThreeRunners(t, fake, legacy)
	before := readFile(t, cfg)

	out, err := runRegisterApp(t, "", "verify", cfg)
	require.Error(t, err)
	require.Contains(t, out, `runners[0] "glrt" (`+fake.URL()+`): valid`)
	require.Contains(t, out, `runners[1] "revoked" (`+fake.URL()+`): invalid (HTTP 403)`)
	require.Contains(t, out, `runners[2] "legacy" (`+fake.URL()+`): valid`)
	require.Equal(t, before, readFile(t, cfg), "no change without --delete")
	sysID := strings.TrimSpace(readFile(t, coordinator.SystemIDPath(cfg)))
	for _, rec := range fake.Recorded("/runners/verify") {
		require.Contains(t, string(rec.Body), `"system_id":"`+sysID+`"`)
	}
	require.Len(t, fake.Recorded("/runners/verify"), 3)

	out, err = runRegisterApp(t, "", "verify", cfg, "--delete")
	require.NoError(t, err, out)
	require.Contains(t, out, "Removed 1 invalid runner(s)")
	golden(t, "verify-delete.toml", normalize(readFile(t, cfg), fake.URL(), "https://gitlab.example.test", legacy, "LEGACY-TOKEN"))
	requireMode0600(t, cfg)

	out, err = runRegisterApp(t, "", "verify", cfg)
	require.NoError(t, err, out)
}

func TestUnregister(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	fake.AddRunner(glrtToken)
	legacy := legacyRunner(t, fake)
	cfg := writeThreeRunners(t, fake, legacy)
	_, err := runRegisterApp(t, "", "verify", cfg) // records this machine as a manager of glrt
	require.Error(t, err)
	sysID := strings.TrimSpace(readFile(t, coordinator.SystemIDPath(cfg)))
	r, _ := fake.RunnerByToken(glrtToken)
	require.Contains(t, r.Managers, sysID)

	out, err := runRegisterApp(t, "", "unregister", cfg, "--name", "glrt")
	require.NoError(t, err, out)
	recs := fake.Recorded("DELETE /runners/managers")
	require.Len(t, recs, 1)
	require.JSONEq(t, `{"token":"`+glrtToken+`","system_id":"`+sysID+`"}`, string(recs[0].Body))
	r, ok := fake.RunnerByToken(glrtToken)
	require.True(t, ok, "a glrt runner stays on the server")
	require.NotContains(t, r.Managers, sysID)
	require.Contains(t, out, "reference_runner names the removed runner")
	golden(t, "unregister-name.toml", normalize(readFile(t, cfg), fake.URL(), "https://gitlab.example.test", legacy, "LEGACY-TOKEN"))

	out, err = runRegisterApp(t, "", "unregister", cfg, "--all")
	require.NoError(t, err, out)
	recs = fake.Recorded("DELETE /runners")
	require.Len(t, recs, 1)
	require.JSONEq(t, `{"token":"`+legacy+`"}`, string(recs[0].Body))
	_, ok = fake.RunnerByToken(legacy)
	require.False(t, ok, "a legacy runner is deleted")
	require.Contains(t, out, "already gone", "the revoked runner is removed too")
	golden(t, "unregister-all.toml", normalize(readFile(t, cfg), fake.URL(), "https://gitlab.example.test"))

	_, err = runRegisterApp(t, "", "unregister", cfg, "--name", "nope")
	require.ErrorContains(t, err, `no runner named "nope"`)
	_, err = runRegisterApp(t, "", "unregister", cfg)
	var ec cli.ExitCoder
	require.ErrorAs(t, err, &ec)
	require.Equal(t, 2, ec.ExitCode())
}

func TestUnregisterKeepsSectionOnFailure(t *testing.T) {
	fake := startFake(t, gitlabfake.Options{})
	fake.AddRunner(glrtToken)
	legacy := legacyRunner(t, fake)
	cfg := writeThreeRunners(t, fake, legacy)
	before := readFile(t, cfg)
	fake.SetFault("/runners", gitlabfake.Fault{Statuses: []int{500, 500, 500}})
	out, err := runRegisterApp(t, "", "unregister", cfg, "--name", "legacy")
	require.Error(t, err)
	require.Contains(t, out, "kept in")
	require.Equal(t, before, readFile(t, cfg))
}

func TestRunnerSections(t *testing.T) {
	text := "a = 1\n\n[[runners]]\n  name = \"x\"\n  [runners.docker]\n    s = '''\n[[runners]]\n'''\n  # indented comment\n\n# about y\n[[runners]]\n  name = \"y\"\n[quota_computation]\n  k = 1\n"
	secs := runnerSections(text)
	require.Len(t, secs, 2)
	require.Equal(t, "[[runners]]\n  name = \"x\"\n  [runners.docker]\n    s = '''\n[[runners]]\n'''\n  # indented comment\n\n", text[secs[0].start:secs[0].end])
	require.Equal(t, "# about y\n[[runners]]\n  name = \"y\"\n", text[secs[1].start:secs[1].end])
}

func TestTOMLString(t *testing.T) {
	tests := map[string]string{
		`plain`:      `"plain"`,
		`a "quoted"`: `"a \"quoted\""`,
		`back\slash`: `"back\\slash"`,
		"line\nfeed": `"line\nfeed"`,
		"ctl\x01":    `"ctl\u0001"`,
		"unicodé ✓":  `"unicodé ✓"`,
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			require.Equal(t, want, tomlString(in))
		})
	}
}

func TestRegisterUndoneWhenConfigCannotBeWritten(t *testing.T) {
	tests := []struct {
		name     string
		args     func(fake *gitlabfake.Server) []string
		endpoint string
	}{
		{"legacy runner deleted", func(*gitlabfake.Server) []string {
			return []string{"--registration-token", gitlabfake.DefaultRegistrationToken}
		}, "DELETE /runners"},
		{"glrt manager deleted", func(fake *gitlabfake.Server) []string {
			fake.AddRunner(glrtToken)
			return []string{"--token", glrtToken}
		}, "DELETE /runners/managers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, gitlabfake.Options{})
			cfg := filepath.Join(t.TempDir(), "missing-dir", "config.toml")
			args := append([]string{"register", cfg, "-n", "--url", fake.URL(), "--name", "x", "--executor", "local-process"}, tc.args(fake)...)
			_, err := runRegisterApp(t, "", args...)
			require.ErrorContains(t, err, "write config")
			require.Len(t, fake.Recorded(tc.endpoint), 1)
			for _, r := range fake.Runners() {
				require.Empty(t, r.Managers, "no runner manager left behind")
				require.False(t, r.Legacy, "no legacy runner left behind")
			}
		})
	}
}
