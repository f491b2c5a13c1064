package devmode

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
)

// demoFiles are the commits of the demo project, oldest first.
var demoFiles = []map[string]string{
	{"README.md": "# demo\n\nThe paas-runner dev-mode demo project.\n"},
	{"main.go": "package main\n\nfunc main() { println(\"hello from the demo project\") }\n"},
	{"VERSION": "1.0.0\n", "README.md": "# demo\n\nThe paas-runner dev-mode demo project, version 1.0.0.\n"},
}

// CreateDemoRepo creates the demo project's repository in dir (branch main,
// a few commits) and returns the head commit hash.
func CreateDemoRepo(dir string) (string, error) {
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return "", fmt.Errorf("init demo repository: %w", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("open demo worktree: %w", err)
	}
	var head plumbing.Hash
	when := time.Now().Add(-time.Hour)
	for i, files := range demoFiles {
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				return "", fmt.Errorf("write demo file: %w", err)
			}
			if _, err := wt.Add(name); err != nil {
				return "", fmt.Errorf("add demo file: %w", err)
			}
		}
		head, err = wt.Commit(fmt.Sprintf("demo commit %d", i+1), &git.CommitOptions{
			Author: &object.Signature{Name: "paas-runner dev", Email: "dev@paas-runner.invalid", When: when.Add(time.Duration(i) * time.Minute)},
		})
		if err != nil {
			return "", fmt.Errorf("commit demo files: %w", err)
		}
	}
	return head.String(), nil
}

// storerLoader serves one repository whatever the endpoint.
type storerLoader struct{ st storer.Storer }

func (l storerLoader) Load(*transport.Endpoint) (storer.Storer, error) { return l.st, nil }

// GitHandler serves the repository at dir read-only over git's smart HTTP
// protocol (info/refs and git-upload-pack, no shallow clones), with go-git's
// server: no git binary is needed. Mount it under the project path
// (e.g. /acme/demo.git/).
func GitHandler(dir string) (http.Handler, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open demo repository: %w", err)
	}
	ep, err := transport.NewEndpoint("/demo")
	if err != nil {
		return nil, fmt.Errorf("git endpoint: %w", err)
	}
	g := &gitServer{srv: server.NewServer(storerLoader{st: repo.Storer}), ep: ep}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs"):
			g.infoRefs(w, r)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			g.uploadPack(w, r)
		default:
			http.NotFound(w, r)
		}
	}), nil
}

// gitServer answers the two requests of a smart HTTP fetch.
type gitServer struct {
	srv transport.Transport
	ep  *transport.Endpoint
}

// infoRefs answers GET …/info/refs?service=git-upload-pack.
func (g *gitServer) infoRefs(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("service") != "git-upload-pack" {
		http.Error(w, "only git-upload-pack is served", http.StatusForbidden)
		return
	}
	sess, err := g.srv.NewUploadPackSession(g.ep, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ar, err := sess.AdvertisedReferencesContext(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ar.Prefix = [][]byte{[]byte("# service=git-upload-pack"), pktline.Flush}
	w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
	w.Header().Set("Cache-Control", "no-cache")
	_ = ar.Encode(w)
}

// uploadPack answers POST …/git-upload-pack with a pack.
func (g *gitServer) uploadPack(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer gz.Close()
		body = gz
	}
	req := packp.NewUploadPackRequest()
	if err := req.Decode(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sess, err := g.srv.NewUploadPackSession(g.ep, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := sess.UploadPack(r.Context(), req)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
			status = http.StatusBadRequest
		}
		http.Error(w, err.Error(), status)
		return
	}
	defer resp.Close()
	w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
	w.Header().Set("Cache-Control", "no-cache")
	_ = resp.Encode(w)
}
