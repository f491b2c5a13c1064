package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

func TestExecJob(t *testing.T) {
	fake := gitlabfake.New(gitlabfake.Options{}).Start()
	t.Cleanup(fake.Close)
	fake.AddRunner("glrt-exec-job-test")
	client := coordinator.New(fake.URL(), "glrt-exec-job-test", coordinator.Options{})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "runner.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("[[runners]]\nurl = %q\nbuilds_dir = %q\n[runners.agent]\ntrace_interval = 0.05\n", fake.URL(), filepath.Join(dir, "builds"))), 0o600))

	tests := []struct {
		name      string
		script    []string
		wantCode  int
		wantState string
	}{
		{name: "success", script: []string{"echo ok"}, wantCode: 0, wantState: gitlabfake.StateSuccess},
		{name: "failure", script: []string{"exit 7"}, wantCode: 1, wantState: gitlabfake.StateFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake.Enqueue(gitlabfake.JobSpec{Script: tc.script, Variables: map[string]string{"GIT_STRATEGY": "none"}})
			job, err := client.RequestJob(t.Context())
			require.NoError(t, err)
			jobFile := filepath.Join(dir, tc.name+".json")
			require.NoError(t, os.WriteFile(jobFile, job.Raw, 0o600))
			_, code := runApp(t, "exec-job", "--config", cfg, jobFile)
			require.Equal(t, tc.wantCode, code)
			got, _ := fake.Job(job.ID)
			require.Equal(t, tc.wantState, got.State)
		})
	}
}

func TestExecJobUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{name: "no job file", args: []string{"exec-job", "--config", "x.toml"}, wantCode: 2},
		{name: "unreadable files", args: []string{"exec-job", "--config", "/nonexistent/runner.toml", "/nonexistent/job.json"}, wantCode: 2},
		{name: "dev with an unknown executor", args: []string{"dev", "--non-interactive", "--executor", "clever-docker", "--dir", t.TempDir()}, wantCode: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, code := runApp(t, tc.args...)
			require.Equal(t, tc.wantCode, code)
		})
	}
}
