// Package agenttest helps tests that run the exec-job agent inside Docker
// images: a static agent binary, and a minimal job image with a POSIX sh
// built from the host's (nothing can be pulled on test machines).
package agenttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/paas/deploy"
	"gitlab.com/paas-runner/paas-runner/paas/docker"
	"gitlab.com/paas-runner/paas-runner/paas/docker/dockertest"
)

var (
	buildOnce sync.Once
	binPath   string
	errBuild  error
	binOut    []byte
)

// StaticAgent compiles the agent alone (agent/internal/testagent),
// statically (CGO_ENABLED=0, as release binaries are), once per test
// binary, and returns its path.
func StaticAgent(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is needed to build the agent: %v", err)
	}
	buildOnce.Do(func() {
		// Shared by every test of the binary, so not t.TempDir().
		dir, err := os.MkdirTemp("", "paas-runner-agent-") //nolint:usetesting // outlives the first test
		if err != nil {
			errBuild = err
			return
		}
		binPath = filepath.Join(dir, "paas-runner")
		cmd := exec.Command(goBin, "build", "-o", binPath, "gitlab.com/paas-runner/paas-runner/agent/internal/testagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		binOut, errBuild = cmd.CombinedOutput()
	})
	require.NoError(t, errBuild, string(binOut))
	return binPath
}

var lddPath = regexp.MustCompile(`(/\S+\.so[.0-9]*)`)

// ShellImage builds a FROM scratch image holding only the host's /bin/sh
// and the libraries it needs: the smallest job image the agent can run
// scripts in (only shell builtins are available). The image is removed when
// the test ends.
func ShellImage(t testing.TB, c *docker.Client) string {
	t.Helper()
	sh, err := filepath.EvalSymlinks("/bin/sh")
	require.NoError(t, err)
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		t.Skipf("cannot list the libraries of %s: %v", sh, err)
	}
	data, err := os.ReadFile(sh)
	require.NoError(t, err)
	files := []deploy.File{{Name: "sh", Mode: 0o755, Data: data}}
	var dockerfile strings.Builder
	dockerfile.WriteString("FROM scratch\nCOPY sh /bin/sh\n")
	for i, lib := range lddPath.FindAllString(string(out), -1) {
		data, err := os.ReadFile(lib)
		require.NoError(t, err)
		name := "lib" + string(rune('a'+i))
		files = append(files, deploy.File{Name: name, Mode: 0o755, Data: data})
		dockerfile.WriteString("COPY " + name + " " + lib + "\n")
	}
	files = append(files, deploy.File{Name: "Dockerfile", Mode: 0o644, Data: []byte(dockerfile.String())})
	tag := "paas-runner-agent-test-sh:" + dockertest.RandomSuffix()
	dockertest.BuildImage(t, c, tag, &deploy.Context{Files: files})
	return tag
}
