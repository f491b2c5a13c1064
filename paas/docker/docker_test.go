package docker_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, host, env string
		wantHost        string
		wantSocket      string
		wantErr         bool
	}{
		{name: "default", wantHost: docker.DefaultHost, wantSocket: "/var/run/docker.sock"},
		{name: "DOCKER_HOST", env: "unix:///run/other.sock", wantHost: "unix:///run/other.sock", wantSocket: "/run/other.sock"},
		{name: "explicit unix wins", host: "unix:///tmp/d.sock", env: "tcp://1.2.3.4:2375", wantHost: "unix:///tmp/d.sock", wantSocket: "/tmp/d.sock"},
		{name: "tcp", host: "tcp://127.0.0.1:2375", wantHost: "tcp://127.0.0.1:2375", wantSocket: "/var/run/docker.sock"},
		{name: "bad scheme", host: "http://x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.env)
			c, err := docker.New(tc.host)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			require.Equal(t, tc.wantHost, c.Host())
			require.Equal(t, tc.wantSocket, c.SocketPath())
		})
	}
}

func TestPingUnreachable(t *testing.T) {
	c, err := docker.New("unix://" + t.TempDir() + "/none.sock")
	require.NoError(t, err)
	_, err = c.Ping(t.Context())
	require.ErrorContains(t, err, "ping docker daemon")
}

// newTestClient returns a daemon client and the stand-in image.
func newTestClient(t *testing.T) (*docker.Client, string) {
	t.Helper()
	c := dockertest.Require(t)
	return c, dockertest.InnerImage(t, c)
}

func TestPingNegotiates(t *testing.T) {
	c := dockertest.Require(t)
	v, err := c.Ping(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, v)
}

func TestContainerLifecycle(t *testing.T) {
	c, image := newTestClient(t)
	run := "t" + dockertest.RandomSuffix()
	labels := map[string]string{docker.LabelRunner: run, docker.LabelJobID: "1", docker.LabelName: run + "-sleep"}
	ctx := t.Context()

	id, err := c.Run(ctx, docker.RunSpec{Image: image, Name: run + "-sleep", Labels: labels, MountSocket: true, Cmd: []string{"sleep", "1m"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Remove(context.Background(), id, "") })

	st, err := c.Inspect(ctx, id)
	require.NoError(t, err)
	require.Equal(t, docker.StatusRunning, st.Status)
	require.Equal(t, id, st.ID)

	again, err := c.Run(ctx, docker.RunSpec{Image: image, Name: run + "-sleep", Labels: labels, Cmd: []string{"sleep", "1m"}})
	require.NoError(t, err, "running an existing name returns it")
	require.Equal(t, id, again)

	listed, err := c.ListByLabel(ctx, map[string]string{docker.LabelRunner: run})
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Equal(t, id, listed[0].ID)
	require.Equal(t, run+"-sleep", listed[0].Name)
	require.Equal(t, image, listed[0].Image)
	for k, v := range labels {
		require.Equal(t, v, listed[0].Labels[k], k)
	}
	none, err := c.ListByLabel(ctx, map[string]string{docker.LabelRunner: run + "-other"})
	require.NoError(t, err)
	require.Empty(t, none)

	require.NoError(t, c.Kill(ctx, id))
	st = waitExited(t, c, id)
	require.Equal(t, 137, st.ExitCode)
	require.NoError(t, c.Kill(ctx, id), "killing an exited container is fine")

	require.NoError(t, c.Remove(ctx, id, ""))
	require.NoError(t, c.Remove(ctx, id, ""), "removing twice is fine")
	require.NoError(t, c.Kill(ctx, id), "killing a removed container is fine")
	st, err = c.Inspect(ctx, id)
	require.NoError(t, err)
	require.Equal(t, docker.StatusNotFound, st.Status)
}

func TestExitCode(t *testing.T) {
	c, image := newTestClient(t)
	tests := []struct {
		name string
		cmd  []string
		code int
	}{
		{name: "success", cmd: []string{"exit", "0"}, code: 0},
		{name: "failure", cmd: []string{"exit", "3"}, code: 3},
		{name: "bad usage", cmd: []string{"nonsense"}, code: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "exit-" + dockertest.RandomSuffix()
			id, err := c.Run(t.Context(), docker.RunSpec{Image: image, Name: name, Cmd: tc.cmd})
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Remove(context.Background(), id, "") })
			st := waitExited(t, c, id)
			require.Equal(t, tc.code, st.ExitCode)
		})
	}
}

func waitExited(t *testing.T, c *docker.Client, id string) docker.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.Inspect(ctx, id)
		require.NoError(t, err)
		if st.Status == docker.StatusExited {
			return st
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("container %s did not exit: %v", id, ctx.Err())
		}
	}
}

func TestBuildImage(t *testing.T) {
	c, image := newTestClient(t)
	tests := []struct {
		name       string
		dockerfile string
		wantErr    string
	}{
		{name: "ok", dockerfile: "FROM " + image + "\nCOPY f /f\nENTRYPOINT [\"/usr/bin/gitlab-runner\"]\n"},
		{name: "missing file", dockerfile: "FROM " + image + "\nCOPY nope /nope\n", wantErr: "nope"},
		{name: "missing base image", dockerfile: "FROM paas-runner-test/does-not-exist:" + dockertest.RandomSuffix() + "\n", wantErr: "does-not-exist"},
		{name: "failing step", dockerfile: "FROM " + image + "\nRUN [\"/usr/bin/gitlab-runner\", \"exit\", \"7\"]\n", wantErr: "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tag := "paas-runner-test/build:" + dockertest.RandomSuffix()
			bc := &deploy.Context{Files: []deploy.File{
				{Name: "Dockerfile", Mode: 0o644, Data: []byte(tc.dockerfile)},
				{Name: "f", Mode: 0o644, Data: []byte("x")},
			}}
			var buf bytes.Buffer
			require.NoError(t, bc.WriteTar(&buf))
			err := c.BuildImage(t.Context(), tag, &buf, map[string]string{dockertest.TestLabel: "true", "paas-runner.t": tag})
			t.Cleanup(func() { _ = c.Remove(context.Background(), "", tag) })
			if tc.wantErr != "" {
				require.Error(t, err)
				require.ErrorContains(t, err, tc.wantErr)
				exists, ierr := c.ImageExists(t.Context(), tag)
				require.NoError(t, ierr)
				require.False(t, exists)
				return
			}
			require.NoError(t, err)
			exists, err := c.ImageExists(t.Context(), tag)
			require.NoError(t, err)
			require.True(t, exists)
			imgs, err := c.ImagesByLabel(t.Context(), map[string]string{"paas-runner.t": tag})
			require.NoError(t, err)
			require.Len(t, imgs, 1)
			require.Contains(t, imgs[0].Tags, tag)
			require.NoError(t, c.Remove(t.Context(), "", tag))
			require.NoError(t, c.Remove(t.Context(), "", tag))
			exists, err = c.ImageExists(t.Context(), tag)
			require.NoError(t, err)
			require.False(t, exists)
		})
	}
}

func TestBuildCancelled(t *testing.T) {
	c, image := newTestClient(t)
	bc := &deploy.Context{Files: []deploy.File{{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM " + image + "\n")}}}
	var buf bytes.Buffer
	require.NoError(t, bc.WriteTar(&buf))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := c.BuildImage(ctx, "paas-runner-test/cancel:"+dockertest.RandomSuffix(), &buf, nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestLogs(t *testing.T) {
	c, image := newTestClient(t)
	id, err := c.Run(t.Context(), docker.RunSpec{Image: image, Name: "logs-" + dockertest.RandomSuffix(), Cmd: []string{"bogus"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Remove(context.Background(), id, "") })
	waitExited(t, c, id)
	out, err := c.Logs(t.Context(), id)
	require.NoError(t, err)
	require.Contains(t, out, "standin: unknown command bogus")
	require.NotErrorIs(t, err, docker.ErrBuild)
	require.True(t, strings.HasSuffix(out, "\n"))
}
