package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"

	"gitlab.com/paas-runner/paas-runner/config"
)

// DefaultBranch is the branch Clever Cloud deploys.
const DefaultBranch = "master"

// DefaultPushTimeout bounds a Push whose ctx has no deadline.
const DefaultPushTimeout = 5 * time.Minute

// Commit identity of the pushed commit.
const (
	CommitAuthorName  = "paas-runner"
	CommitAuthorEmail = "paas-runner@localhost"
	CommitMessage     = "Job definition\n"
)

// remoteName is the name of the remote in the in-memory repository.
const remoteName = "paas"

// ErrAlreadyPushed means the branch already exists on the remote: the job
// was already handed over (a relaunch after a crash), nothing was pushed.
var ErrAlreadyPushed = errors.New("deployment branch already exists")

// Auth is the HTTP basic authentication of a deployment repository.
type Auth struct {
	Username string
	Password config.Secret
}

func (a Auth) method() transport.AuthMethod {
	if a.Username == "" && a.Password.IsZero() {
		return nil
	}
	return &http.BasicAuth{Username: a.Username, Password: a.Password.Reveal()}
}

// Push commits the files of c (one commit, no parent, author paas-runner)
// in an in-memory repository and pushes it to refs/heads/<branch> (default
// master) of remoteURL, authenticating with auth. remoteURL must not embed
// credentials. When the branch already exists on the remote, Push returns
// ErrAlreadyPushed without pushing. Push honours ctx (and applies
// DefaultPushTimeout when ctx has no deadline).
func Push(ctx context.Context, remoteURL string, auth Auth, c *Context, branch string) error {
	if branch == "" {
		branch = DefaultBranch
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPushTimeout)
		defer cancel()
	}
	refName := plumbing.NewBranchReferenceName(branch)
	st := memory.NewStorage()
	repo, err := git.Init(st, nil)
	if err != nil {
		return fmt.Errorf("init in-memory repository: %w", err)
	}
	remote, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: remoteName, URLs: []string{remoteURL}})
	if err != nil {
		return fmt.Errorf("configure deployment remote: %w", err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth.method()})
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
	case err != nil:
		return fmt.Errorf("list deployment repository refs: %w", err)
	default:
		for _, r := range refs {
			if r.Name() == refName {
				return fmt.Errorf("push %s: %w", branch, ErrAlreadyPushed)
			}
		}
	}
	hash, err := commitContext(st, c)
	if err != nil {
		return err
	}
	if err := st.SetReference(plumbing.NewHashReference(refName, hash)); err != nil {
		return fmt.Errorf("set %s: %w", refName, err)
	}
	err = repo.PushContext(ctx, &git.PushOptions{
		RemoteName: remoteName,
		RefSpecs:   []gitconfig.RefSpec{gitconfig.RefSpec(refName + ":" + refName)},
		Auth:       auth.method(),
	})
	switch {
	case errors.Is(err, git.NoErrAlreadyUpToDate):
		return fmt.Errorf("push %s: %w", branch, ErrAlreadyPushed)
	case err != nil:
		return fmt.Errorf("push %s to deployment repository: %w", branch, err)
	}
	return nil
}

// commitContext writes the files of c as one root commit in st.
func commitContext(st *memory.Storage, c *Context) (plumbing.Hash, error) {
	files := slices.Clone(c.Files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	tree := &object.Tree{}
	for _, f := range files {
		if f.Name == "" || strings.ContainsRune(f.Name, '/') {
			return plumbing.ZeroHash, fmt.Errorf("commit build context: invalid file name %q", f.Name)
		}
		blob := st.NewEncodedObject()
		blob.SetType(plumbing.BlobObject)
		w, err := blob.Writer()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("write blob %s: %w", f.Name, err)
		}
		if _, err := w.Write(f.Data); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("write blob %s: %w", f.Name, err)
		}
		if err := w.Close(); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("write blob %s: %w", f.Name, err)
		}
		h, err := st.SetEncodedObject(blob)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("store blob %s: %w", f.Name, err)
		}
		mode := filemode.Regular
		if f.Mode&0o111 != 0 {
			mode = filemode.Executable
		}
		tree.Entries = append(tree.Entries, object.TreeEntry{Name: f.Name, Mode: mode, Hash: h})
	}
	treeHash, err := storeObject(st, tree)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store tree: %w", err)
	}
	sig := object.Signature{Name: CommitAuthorName, Email: CommitAuthorEmail, When: time.Now()}
	commit := &object.Commit{Author: sig, Committer: sig, Message: CommitMessage, TreeHash: treeHash}
	h, err := storeObject(st, commit)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func storeObject(st *memory.Storage, o encoder) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err //nolint:wrapcheck // callers wrap
	}
	return st.SetEncodedObject(obj) //nolint:wrapcheck // callers wrap
}
