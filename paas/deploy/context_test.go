package deploy

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
)

const (
	runnerToken     = "glrt-RUNNER-TOKEN-abcdef"
	ccToken         = "CLEVER-TOKEN-0123456789"
	traceWatchToken = "TRACE-WATCH-ADMIN-TOKEN"
	jobToken        = "JOB-TOKEN-xyz"
	s3Secret        = "S3-SECRET-KEY"
)

func testRunner() *config.Runner {
	r := config.DefaultRunner()
	r.Name = "paas"
	r.URL = "https://heptapod.example"
	r.ID = 7
	r.Token = runnerToken
	r.Executor = config.ExecutorCleverDocker
	r.CCToken = ccToken
	r.CCOrgaID = "orga_x"
	r.CCGitlabNamespaceAttributesToken = "NS-ATTR-TOKEN"
	r.CCExtraEnv = map[string]string{"CC_ENABLE_HEPTAPOD_RUNNER": "true"}
	r.TraceWatch = &config.TraceWatch{Token: traceWatchToken, TimeoutSeconds: 30}
	r.HeptapodRunnerMainImage = "registry.example/runner:1"
	r.Host = "unix:///var/run/docker.sock"
	r.Extra = map[string]any{
		"custom_build_dir": map[string]any{"enabled": true},
		"docker":           map[string]any{"image": "debian:12", "privileged": false, "volumes": []any{"/cache"}},
		"cache":            map[string]any{"Type": "s3", "s3": map[string]any{"SecretKey": config.Secret(s3Secret)}},
		"cc_future_key":    "should-not-pass",
	}
	return &r
}

func testJob(t testing.TB, image string) *coordinator.Job {
	t.Helper()
	p := map[string]any{
		"id":        4821,
		"token":     jobToken,
		"job_info":  map[string]any{"id": 4821, "project_id": 3},
		"variables": []any{map[string]any{"key": DependencyProxyVariable, "value": "gl.example:443/g/dependency_proxy/containers"}, map[string]any{"key": "TAG", "value": "12"}},
	}
	if image != "" {
		p["image"] = map[string]any{"name": image}
	}
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	job, err := coordinator.ParseJob(raw)
	require.NoError(t, err)
	return job
}

func TestBuildHeptapod(t *testing.T) {
	c, err := Build(testRunner(), testJob(t, "debian:$TAG"), Options{})
	require.NoError(t, err)
	names := []string{}
	for _, f := range c.Files {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"Dockerfile", "runner.toml", "job.json"}, names)

	df, ok := c.File(DockerfileName)
	require.True(t, ok)
	require.Equal(t, `FROM registry.example/runner:1
COPY runner.toml /etc/heptapod-runner/runner.toml
COPY job.json /etc/heptapod-runner/job.json
ENV DEBUG="true"
ENTRYPOINT ["/usr/bin/gitlab-runner", "exec-fetched-job", "--config", "/etc/heptapod-runner/runner.toml", "/etc/heptapod-runner/job.json"]
`, string(df))

	jj, ok := c.File(JobJSONName)
	require.True(t, ok)
	var job map[string]any
	require.NoError(t, json.Unmarshal(jj, &job))
	require.Equal(t, "gl.example:443/g/dependency_proxy/containers/library/debian:12", job["image"].(map[string]any)["name"])
	require.Equal(t, jobToken, job["token"])

	rt, ok := c.File(RunnerTOMLName)
	require.True(t, ok)
	var inner struct {
		Runners []map[string]any `toml:"runners"`
	}
	_, err = toml.Decode(string(rt), &inner)
	require.NoError(t, err, "runner.toml:\n%s", rt)
	require.Len(t, inner.Runners, 1)
	tbl := inner.Runners[0]
	require.Equal(t, "docker", tbl["executor"])
	require.Equal(t, testRunner().ShortID(), tbl["token"], "the runner token never reaches the job host")
	require.NotContains(t, string(rt), runnerToken)
	require.Equal(t, "https://heptapod.example", tbl["url"])
	require.Equal(t, "paas", tbl["name"])
	require.Equal(t, "debian:12", tbl["docker"].(map[string]any)["image"])
	require.Equal(t, s3Secret, tbl["cache"].(map[string]any)["s3"].(map[string]any)["SecretKey"])
	require.Contains(t, tbl, "custom_build_dir")
	for k := range tbl {
		require.False(t, strings.HasPrefix(k, "cc_"), "forwarded key %q", k)
	}
	for _, k := range []string{"paas_job_trace_watch", "heptapod_runner_main_image", "host", "inner_runner", "resource_name_prefix", "work_root"} {
		require.NotContains(t, tbl, k)
	}
	for _, secret := range []string{ccToken, traceWatchToken, "NS-ATTR-TOKEN", "should-not-pass", config.Masked} {
		require.NotContains(t, string(rt), secret)
	}
	for _, f := range c.Files {
		require.NotContains(t, string(f.Data), ccToken, f.Name)
		require.NotContains(t, string(f.Data), traceWatchToken, f.Name)
	}
}

func TestBuildAgent(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "paas-runner")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF fake agent"), 0o755))
	tests := []struct {
		name       string
		image      string
		agentImage string
		noDocker   bool
		binary     string
		wantFrom   string
		wantCopy   string
		wantBinary bool
		wantJobErr bool
		wantErr    bool
	}{
		{name: "job image and binary", image: "python:$TAG", binary: bin, wantFrom: "FROM python:12\n", wantCopy: "COPY paas-runner /usr/local/bin/paas-runner\n", wantBinary: true},
		{name: "runner image fallback", binary: bin, wantFrom: "FROM debian:12\n", wantCopy: "COPY paas-runner /usr/local/bin/paas-runner\n", wantBinary: true},
		{name: "agent image", image: "alpine", agentImage: "registry.example/paas-runner:1", wantFrom: "FROM alpine\n", wantCopy: "COPY --from=registry.example/paas-runner:1 /usr/bin/paas-runner /usr/local/bin/paas-runner\n"},
		{name: "no image anywhere", noDocker: true, binary: bin, wantJobErr: true},
		{name: "no agent", image: "alpine", wantErr: true},
		{name: "missing binary", image: "alpine", binary: filepath.Join(t.TempDir(), "nope"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRunner()
			r.InnerRunner = config.InnerRunnerAgent
			r.AgentImage = tc.agentImage
			if tc.noDocker {
				delete(r.Extra, "docker")
			}
			c, err := Build(r, testJob(t, tc.image), Options{AgentBinary: tc.binary})
			if tc.wantJobErr {
				je, ok := errors.AsType[*executors.JobError](err)
				require.True(t, ok, "want a JobError, got %v", err)
				require.Equal(t, coordinator.RunnerConfigError, je.Reason)
				return
			}
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			df, _ := c.File(DockerfileName)
			require.True(t, strings.HasPrefix(string(df), tc.wantFrom), string(df))
			require.Contains(t, string(df), tc.wantCopy)
			require.Contains(t, string(df), "COPY runner.toml /etc/paas-runner/runner.toml\nCOPY job.json /etc/paas-runner/job.json\n")
			require.True(t, strings.HasSuffix(string(df), `ENTRYPOINT ["/usr/local/bin/paas-runner", "exec-job", "--config", "/etc/paas-runner/runner.toml", "/etc/paas-runner/job.json"]`+"\n"))
			data, ok := c.File(AgentBinaryName)
			require.Equal(t, tc.wantBinary, ok)
			if ok {
				require.Equal(t, "\x7fELF fake agent", string(data))
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	r := testRunner()
	r.InnerRunner = "bogus"
	_, err := Build(r, testJob(t, "x"), Options{})
	require.ErrorContains(t, err, "unknown inner_runner")
	_, err = Build(testRunner(), &coordinator.Job{ID: 1}, Options{})
	require.Error(t, err)
}

func TestRunnerTOMLExtraRemoved(t *testing.T) {
	out, err := RunnerTOML(testRunner(), "custom_build_dir")
	require.NoError(t, err)
	require.NotContains(t, string(out), "custom_build_dir")
	require.Contains(t, string(out), "[[runners]]")
}

func TestWriteTar(t *testing.T) {
	c := testContext()
	var buf bytes.Buffer
	require.NoError(t, c.WriteTar(&buf))
	tr := tar.NewReader(&buf)
	got := map[string]File{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		got[h.Name] = File{Name: h.Name, Mode: h.Mode, Data: data}
	}
	require.Len(t, got, len(c.Files))
	for _, f := range c.Files {
		require.Equal(t, f, got[f.Name])
	}
	var again bytes.Buffer
	require.NoError(t, c.WriteTar(&again))
	var first bytes.Buffer
	require.NoError(t, c.WriteTar(&first))
	require.Equal(t, first.Bytes(), again.Bytes(), "tar streams are reproducible")
}

func BenchmarkBuildContext(b *testing.B) {
	r := testRunner()
	job := testJob(b, "debian:$TAG")
	b.ReportAllocs()
	for b.Loop() {
		c, err := Build(r, job, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.WriteTar(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
