package agent

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

// makeRepo creates a repository with one commit per content of version.txt
// on branch main and returns its directory and the commit hashes.
func makeRepo(t *testing.T, versions ...string) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	require.NoError(t, err)
	wt, err := repo.Worktree()
	require.NoError(t, err)
	var shas []string
	for i, v := range versions {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "version.txt"), []byte(v+"\n"), 0o644))
		_, err := wt.Add("version.txt")
		require.NoError(t, err)
		h, err := wt.Commit("commit "+v, &git.CommitOptions{Author: &object.Signature{Name: "Dev", Email: "dev@example.test", When: time.Unix(int64(1700000000+i), 0)}})
		require.NoError(t, err)
		shas = append(shas, h.String())
	}
	return dir, shas
}

// serveRepo serves dir's .git with git http-backend, requiring the job
// token as HTTP basic auth password.
func serveRepo(t *testing.T, dir, token string) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(string(out[:len(out)-1]), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git http-backend not found: %v", err)
		}
		t.Skipf("git http-backend not found (%v); install git to run this test", err)
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "gitlab-ci-token" || p != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGitCheckout(t *testing.T) {
	dir, shas := makeRepo(t, "v1", "v2", "v3")
	tests := []struct {
		name      string
		sha       string
		depth     int
		strategy  string
		badToken  bool
		wantState string
		contains  []string
		script    []string
	}{
		{
			name: "shallow clone of head", sha: shas[2], depth: 1, strategy: "clone", wantState: gitlabfake.StateSuccess,
			script: []string{"cat version.txt", "test -f .git/shallow && echo is-shallow"}, contains: []string{"v3", "is-shallow", "git depth set to 1"},
		},
		{
			name: "full clone of an older commit", sha: shas[0], strategy: "clone", wantState: gitlabfake.StateSuccess,
			script: []string{"cat version.txt"}, contains: []string{"v1", "Checking out " + shas[0][:8]},
		},
		{
			name: "none", sha: shas[2], strategy: "none", wantState: gitlabfake.StateSuccess,
			script: []string{"test ! -e .git && echo no-git"}, contains: []string{"no-git"},
		},
		{
			name: "rejected credentials", sha: shas[2], strategy: "clone", badToken: true, wantState: gitlabfake.StateFailed,
			script: []string{"echo never"}, contains: []string{"system failure"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t, gitlabfake.Options{})
			job := acquire(t, s, gitlabfake.JobSpec{Script: tc.script}, false)
			token := job.Token.Reveal()
			if tc.badToken {
				token = "another-token"
			}
			url := serveRepo(t, dir, token)
			setGit(job, url, tc.sha, tc.depth, tc.strategy)
			res, err := Run(t.Context(), testOptions(t, s, job))
			require.NoError(t, err)
			got, _ := s.Job(job.ID)
			trace := string(got.Trace)
			require.Equal(t, tc.wantState, got.State, trace)
			require.Equal(t, tc.wantState, res.State)
			for _, c := range tc.contains {
				require.Contains(t, trace, c)
			}
			require.NotContains(t, trace, job.Token.Reveal())
			if tc.badToken {
				require.Equal(t, "runner_system_failure", got.FailureReason)
			}
		})
	}
}

func setGit(job *coordinator.Job, url, sha string, depth int, strategy string) {
	u := url[:len("http://")] + "gitlab-ci-token:" + job.Token.Reveal() + "@" + url[len("http://"):] + "/proj/.git"
	job.GitInfo.RepoURL = config.Secret(u)
	job.GitInfo.Sha = sha
	job.GitInfo.Depth = depth
	job.GitInfo.Refspecs = []string{"+refs/heads/main:refs/remotes/origin/main"}
	if strategy != "" {
		job.Variables = append(job.Variables, coordinator.Variable{Key: "GIT_STRATEGY", Value: strategy})
	}
}

// TestGitFetchReusesCheckout runs two jobs in the same builds dir: the
// second fetches into the first one's repository and cleans it.
func TestGitFetchReusesCheckout(t *testing.T) {
	dir, shas := makeRepo(t, "v1", "v2")
	s := newFake(t, gitlabfake.Options{})
	builds := t.TempDir()
	for i, sha := range shas {
		job := acquire(t, s, gitlabfake.JobSpec{Script: []string{"cat version.txt", "test ! -e junk && echo clean", "touch junk"}}, false)
		url := serveRepo(t, dir, job.Token.Reveal())
		setGit(job, url, sha, 0, "fetch")
		o := testOptions(t, s, job)
		o.BuildsDir = builds
		res, err := Run(t.Context(), o)
		require.NoError(t, err)
		got, _ := s.Job(job.ID)
		trace := string(got.Trace)
		require.Equal(t, "success", res.State, trace)
		require.Contains(t, trace, "v"+string(rune('1'+i)))
		require.Contains(t, trace, "clean")
		if i == 1 {
			require.Contains(t, trace, "Reinitialized existing Git repository")
		}
	}
}

func TestSplitRepoURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantAuth       bool
	}{
		{name: "credentials", in: "https://gitlab-ci-token:tok@gitlab.example.test/a/b.git", want: "https://gitlab.example.test/a/b.git", wantAuth: true},
		{name: "no credentials", in: "http://127.0.0.1:8080/a/b.git", want: "http://127.0.0.1:8080/a/b.git"},
		{name: "local path", in: "/srv/repo.git", want: "/srv/repo.git"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, auth, err := splitRepoURL(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.wantAuth, auth != nil)
		})
	}
}

// An unparsable URL holding credentials is refused without echoing them
// (the raw URL used to become the remote, the job log line and the error).
func TestSplitRepoURLUnparsableKeepsSecret(t *testing.T) {
	for _, in := range []string{
		"https://gitlab-ci-token:s3cr3t-tok@gitlab.example.test/a/b%zz.git",
		"https://gitlab-ci-token:s3cr3t-tok@gitlab.example.test:port/a/b.git",
	} {
		got, auth, err := splitRepoURL(in)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cr3t-tok")
		require.NotContains(t, got, "s3cr3t-tok")
		require.Nil(t, auth)
	}
}
