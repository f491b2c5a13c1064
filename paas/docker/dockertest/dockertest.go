package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
)

// StandinPath is where InnerImage puts the stand-in: the path of the inner
// runner in Heptapod Runner images.
const StandinPath = "/usr/bin/gitlab-runner"

// AgentPath is where InnerImage also puts the stand-in: the path of the
// paas-runner agent in agent-mode images.
const AgentPath = "/usr/local/bin/paas-runner"

// AgentImagePath is where InnerImage puts the stand-in for agent_image
// (COPY --from=<agent_image> /usr/bin/paas-runner).
const AgentImagePath = "/usr/bin/paas-runner"

// TestLabel marks every image this package builds.
const TestLabel = "paas-runner.test"

// Require returns a client of the local daemon (DOCKER_HOST or the default
// socket) after pinging it. When none is reachable the test is skipped,
// unless CI=true, then it fails.
func Require(t testing.TB) *docker.Client {
	t.Helper()
	c, err := docker.New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = c.Ping(ctx)
	}
	if err != nil {
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = docker.DefaultHost
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Docker daemon reachable at %s (CI=true, so this is an error): %v", host, err)
		}
		t.Skipf("no Docker daemon reachable at %s: %v", host, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RandomSuffix returns 8 random hex digits, to make names unique across
// concurrently running test packages.
func RandomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StandinBinary builds the stand-in inner runner (testdata/standin) as a
// static binary and returns its path.
func StandinBinary(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	src := filepath.Join(filepath.Dir(file), "testdata", "standin")
	out := filepath.Join(t.TempDir(), "standin")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build stand-in: %s", b)
	return out
}

// goTool is the go command of the running tests: $GOROOT/bin/go when GOROOT
// is set, else "go" from PATH, where `go test` puts its own GOROOT/bin first
// (runtime.GOROOT is deprecated).
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// InnerImage builds a FROM scratch image holding the stand-in at
// StandinPath, AgentPath and AgentImagePath, tagged paas-runner-test/inner:<random>, and
// removes it when the test ends. It returns the tag.
func InnerImage(t testing.TB, c *docker.Client) string {
	t.Helper()
	bin, err := os.ReadFile(StandinBinary(t))
	require.NoError(t, err)
	tag := "paas-runner-test/inner:" + RandomSuffix()
	bc := &deploy.Context{Files: []deploy.File{
		{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM scratch\nCOPY standin " + StandinPath + "\nCOPY standin " + AgentPath + "\nCOPY standin " + AgentImagePath + "\nCOPY image-tag /etc/paas-runner-test-tag\nENTRYPOINT [\"" + StandinPath + "\"]\n")},
		{Name: "standin", Mode: 0o755, Data: bin},
		// A file unique to this image keeps its id (and build cache) apart
		// from the images concurrent tests build, so that one test's
		// cleanup can never touch another's base image.
		{Name: "image-tag", Mode: 0o644, Data: []byte(tag + "\n")},
	}}
	BuildImage(t, c, tag, bc)
	return tag
}

// BuildImage builds bc into tag (labelled TestLabel) and removes the image
// when the test ends.
func BuildImage(t testing.TB, c *docker.Client, tag string, bc *deploy.Context) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, bc.WriteTar(&buf))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(t, c.BuildImage(ctx, tag, &buf, map[string]string{TestLabel: "true"}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Remove(ctx, "", tag); err != nil && !strings.Contains(err.Error(), "No such image") {
			t.Errorf("remove test image %s: %v", tag, err)
		}
	})
}
