package deploy

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gitServer serves bare repositories under root through git http-backend,
// behind HTTP basic authentication.
type gitServer struct {
	URL  string
	root string
}

// newGitServer starts a smart-HTTP git server requiring user:pass.
func newGitServer(t *testing.T, user, pass string) *gitServer {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git is required in CI: %v", err)
		}
		t.Skipf("git not installed: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gitBin, "--exec-path").Output()
	require.NoError(t, err)
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	_, err = os.Stat(backend)
	require.NoError(t, err, "git http-backend")
	root := t.TempDir()
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: "/git",
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"HOME=" + root,
			"GIT_CONFIG_NOSYSTEM=1",
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &gitServer{URL: srv.URL + "/git", root: root}
}

// git runs git with the server's isolated environment.
func (g *gitServer) git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Env = []string{"HOME=" + g.root, "GIT_CONFIG_NOSYSTEM=1", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return string(out)
}

// newRepo creates an empty bare repository accepting pushes and returns
// its URL.
func (g *gitServer) newRepo(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(g.root, name+".git")
	g.git(t, "init", "-q", "--bare", dir)
	g.git(t, "--git-dir", dir, "config", "http.receivepack", "true")
	return g.URL + "/" + name + ".git"
}

// rejectPushes installs a pre-receive hook refusing every push.
func (g *gitServer) rejectPushes(t *testing.T, name string) {
	t.Helper()
	hook := filepath.Join(g.root, name+".git", "hooks", "pre-receive")
	require.NoError(t, os.WriteFile(hook, []byte("#!/bin/sh\necho 'refused by test' >&2\nexit 1\n"), 0o755))
}

// show returns the content of path at ref in repository name.
func (g *gitServer) show(t *testing.T, name, ref, path string) string {
	t.Helper()
	return g.git(t, "--git-dir", filepath.Join(g.root, name+".git"), "show", ref+":"+path)
}

// refs lists the refs of repository name.
func (g *gitServer) refs(t *testing.T, name string) string {
	t.Helper()
	return g.git(t, "--git-dir", filepath.Join(g.root, name+".git"), "for-each-ref", "--format=%(refname)")
}
