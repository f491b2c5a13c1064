package clevertest

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// SetRepoReadyAfter makes repoState CREATED from the (n+1)-th GET of each
// application on (n = 0: at once); a negative n means never. Default 1.
func (s *Server) SetRepoReadyAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repoReadyAfter = n
}

// RejectPushes makes the git endpoint refuse pushes (HTTP 403).
func (s *Server) RejectPushes(reject bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectPush = reject
}

// OnPush registers f, called (outside the fake's lock) after every
// successful push with the application's id and name: tests play the inner
// runner from it.
func (s *Server) OnPush(f func(appID, name string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onPush = f
}

// Pushed returns the files of the commit at refs/heads/master of the app's
// deployment repository, or ok = false when nothing was pushed.
func (s *Server) Pushed(appID string) (files map[string][]byte, ok bool) {
	s.t.Helper()
	if !s.hasGit {
		return nil, false
	}
	repo, err := git.PlainOpen(s.repoDir(appID))
	if err != nil {
		return nil, false
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("master"), true)
	if err != nil {
		return nil, false
	}
	commit, err := repo.CommitObject(ref.Hash())
	if err != nil {
		s.t.Errorf("clevertest: read pushed commit of %s: %v", appID, err)
		return nil, false
	}
	tree, err := commit.Tree()
	if err != nil {
		s.t.Errorf("clevertest: read pushed tree of %s: %v", appID, err)
		return nil, false
	}
	files = map[string][]byte{}
	err = tree.Files().ForEach(func(f *object.File) error {
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		files[f.Name] = data
		return nil
	})
	if err != nil {
		s.t.Errorf("clevertest: read pushed files of %s: %v", appID, err)
		return nil, false
	}
	return files, true
}

func (s *Server) repoDir(appID string) string {
	return filepath.Join(s.gitRoot, appID+".git")
}

func initRepo(dir string) error {
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return fmt.Errorf("read config of %s: %w", dir, err)
	}
	cfg.Raw.Section("http").SetOption("receivepack", "true")
	if err := repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("write config of %s: %w", dir, err)
	}
	return nil
}

// serveGit serves /git/<app id>.git/… through git http-backend, behind basic
// auth <auth user>:<orga token>.
func (s *Server) serveGit(w http.ResponseWriter, r *http.Request) {
	if !s.hasGit {
		http.NotFound(w, r)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/git/")
	repoName, _, _ := strings.Cut(rest, "/")
	appID := strings.TrimSuffix(repoName, ".git")
	user, pass, hasAuth := r.BasicAuth()
	receive := strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack"
	s.mu.Lock()
	a, ok := s.apps[appID]
	var token, state string
	if ok {
		token = s.orgas[a.Orga]
		state = s.repoStateLocked(a)
	}
	reject := s.rejectPush
	s.mu.Unlock()
	if !ok || a.Deleted || !strings.HasSuffix(repoName, ".git") {
		http.NotFound(w, r)
		return
	}
	if !hasAuth || user != s.authUser || pass != token {
		w.Header().Set("WWW-Authenticate", `Basic realm="clever"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	if state != "CREATED" {
		http.NotFound(w, r)
		return
	}
	if receive {
		status, _, latency := s.injected(EndpointPush)
		if !sleep(r, latency) {
			return
		}
		if reject || status != 0 {
			if status == 0 {
				status = http.StatusForbidden
			}
			http.Error(w, "push rejected", status)
			return
		}
	}
	s.git.ServeHTTP(w, r)
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
		s.recordPush(appID)
	}
}

func (s *Server) recordPush(appID string) {
	repo, err := git.PlainOpen(s.repoDir(appID))
	if err != nil {
		return
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("master"), true)
	if err != nil {
		return
	}
	s.mu.Lock()
	a, ok := s.apps[appID]
	var name string
	if ok {
		a.Pushes++
		a.CommitID = ref.Hash().String()
		a.State = "SHOULD_BE_UP"
		name = a.Name
	}
	hook := s.onPush
	s.mu.Unlock()
	if ok && hook != nil {
		hook(appID, name)
	}
}
