package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// Git strategies (GIT_STRATEGY).
const (
	strategyClone = "clone"
	strategyFetch = "fetch"
	strategyNone  = "none"
)

// gitStrategy returns the job's GIT_STRATEGY, defaulting like GitLab:
// fetch when the project allows it, else clone.
func gitStrategy(job *coordinator.Job) string {
	if v, ok := job.Variable("GIT_STRATEGY"); ok {
		switch v = strings.ToLower(strings.TrimSpace(v)); v {
		case strategyClone, strategyFetch, strategyNone:
			return v
		case "empty":
			return strategyNone
		}
	}
	if job.AllowGitFetch {
		return strategyFetch
	}
	return strategyClone
}

// splitRepoURL removes the credentials from a clone URL and returns them as
// a go-git auth method (nil without credentials).
func splitRepoURL(raw string) (string, transport.AuthMethod, error) {
	u, err := url.Parse(raw)
	if err != nil && strings.Contains(raw, "://") {
		// Never echo raw: it may hold the job token as user info, and the
		// error reaches the agent's own (unmasked) log.
		return "", nil, errors.New("invalid repository URL in the job payload")
	}
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 {
		// A local path (or Windows drive letter): no credentials.
		return raw, nil, nil //nolint:nilerr // a plain path is valid
	}
	if u.User == nil {
		return u.String(), nil, nil
	}
	pass, _ := u.User.Password()
	auth := &githttp.BasicAuth{Username: u.User.Username(), Password: pass}
	u.User = nil
	return u.String(), auth, nil
}

// defaultRefspecs are used when the payload has none.
func defaultRefspecs(gi coordinator.GitInfo) []string {
	if gi.Ref == "" {
		return []string{"+refs/heads/*:refs/remotes/origin/*"}
	}
	if gi.RefType == "tag" {
		return []string{"+refs/tags/" + gi.Ref + ":refs/tags/" + gi.Ref}
	}
	return []string{"+refs/heads/" + gi.Ref + ":refs/remotes/origin/" + gi.Ref}
}

// checkout prepares projectDir at the job's sha following GIT_STRATEGY.
// Progress lines go to out (the job log). No URL with credentials is ever
// written or returned.
func checkout(ctx context.Context, job *coordinator.Job, projectDir string, out io.Writer) error {
	strategy := gitStrategy(job)
	if strategy == strategyNone {
		fmt.Fprintln(out, "Skipping Git repository setup (GIT_STRATEGY=none)")
		if err := os.MkdirAll(projectDir, 0o755); err != nil {
			return fmt.Errorf("create project dir: %w", err)
		}
		return nil
	}
	remoteURL, auth, err := splitRepoURL(job.GitInfo.RepoURL.Reveal())
	if err != nil {
		return err
	}
	repo, err := openOrInit(projectDir, strategy, out)
	if err != nil {
		return err
	}
	if err := fetch(ctx, repo, job, remoteURL, auth, out); err != nil {
		return err
	}
	if v, ok := job.Variable("GIT_CHECKOUT"); ok && strings.EqualFold(strings.TrimSpace(v), "false") {
		fmt.Fprintln(out, "Skipping Git checkout (GIT_CHECKOUT=false)")
		return nil
	}
	return checkoutSha(repo, job, strategy == strategyFetch, out)
}

// openOrInit reuses the repository in projectDir (fetch strategy) or
// creates a fresh one.
func openOrInit(projectDir, strategy string, out io.Writer) (*git.Repository, error) {
	if strategy == strategyFetch {
		if repo, err := git.PlainOpen(projectDir); err == nil {
			fmt.Fprintf(out, "Reinitialized existing Git repository in %s/.git/\n", projectDir)
			return repo, nil
		}
	}
	if err := os.RemoveAll(projectDir); err != nil {
		return nil, fmt.Errorf("remove old project dir: %w", err)
	}
	if err := os.MkdirAll(projectDir, 0o755); err != nil {
		return nil, fmt.Errorf("create project dir: %w", err)
	}
	repo, err := git.PlainInit(projectDir, false)
	if err != nil {
		return nil, fmt.Errorf("init git repository: %w", err)
	}
	fmt.Fprintf(out, "Initialized empty Git repository in %s/.git/\n", projectDir)
	return repo, nil
}

// fetch (re)creates the origin remote without credentials and fetches the
// job's refspecs at its depth.
func fetch(ctx context.Context, repo *git.Repository, job *coordinator.Job, remoteURL string, auth transport.AuthMethod, out io.Writer) error {
	_ = repo.DeleteRemote("origin")
	if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{remoteURL}}); err != nil {
		return fmt.Errorf("create remote: %w", err)
	}
	refspecs := job.GitInfo.Refspecs
	if len(refspecs) == 0 {
		refspecs = defaultRefspecs(job.GitInfo)
	}
	specs := make([]gitconfig.RefSpec, 0, len(refspecs))
	for _, r := range refspecs {
		rs := gitconfig.RefSpec(r)
		if err := rs.Validate(); err != nil {
			return fmt.Errorf("invalid refspec %q: %w", r, err)
		}
		specs = append(specs, rs)
	}
	depth := job.GitInfo.Depth
	if v, ok := job.Variable("GIT_DEPTH"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			depth = n
		}
	}
	if depth > 0 {
		fmt.Fprintf(out, "Fetching changes with git depth set to %d...\n", depth)
	} else {
		fmt.Fprintln(out, "Fetching changes...")
	}
	fmt.Fprintf(out, "Created fresh repository remote origin %s\n", remoteURL)
	err := repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", remoteURL, err)
	}
	return nil
}

// checkoutSha checks out the job's sha as a detached HEAD (and cleans
// untracked files of a reused checkout).
func checkoutSha(repo *git.Repository, job *coordinator.Job, clean bool, out io.Writer) error {
	sha := job.GitInfo.Sha
	short := sha[:min(len(sha), 8)]
	fmt.Fprintf(out, "Checking out %s as detached HEAD (ref is %s)...\n", short, job.GitInfo.Ref)
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("open worktree: %w", err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: plumbing.NewHash(sha), Force: true}); err != nil {
		return fmt.Errorf("check out %s: %w", short, err)
	}
	if clean {
		if err := wt.Clean(&git.CleanOptions{Dir: true}); err != nil {
			return fmt.Errorf("clean worktree: %w", err)
		}
	}
	return nil
}
