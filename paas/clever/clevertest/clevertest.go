package clevertest

import (
	mrand "math/rand/v2"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
)

// Request is one API request as seen by the fake.
type Request struct {
	Method   string
	Path     string
	Endpoint string
	// Scheme is the Authorization scheme word ("token", "Bearer") or "".
	Scheme string
}

// Server is a fake Clever Cloud API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server root; the API base (cc_api_url) is APIURL().
	URL string

	t        testing.TB
	srv      *httptest.Server
	gitRoot  string
	git      http.Handler
	hasGit   bool
	authUser string

	mu sync.Mutex
	// Everything below is guarded by mu.
	orgas          map[string]string
	apps           map[string]*App
	order          []string
	faults         map[string]*fault
	repoReadyAfter int
	rejectPush     bool
	requireScheme  string
	flavors        []Flavor
	onPush         func(appID, name string)
	version        string
	requests       []Request
	rnd            *mrand.Rand
}

// Option configures a Server.
type Option func(*Server)

// WithAuthUser sets the git basic-auth user name (cc_auth_user).
func WithAuthUser(u string) Option { return func(s *Server) { s.authUser = u } }

// WithFlavors replaces the flavor catalogue.
func WithFlavors(f []Flavor) Option { return func(s *Server) { s.flavors = f } }

// WithoutGit serves the API only; Pushed and pushes are unavailable. New
// does not skip the test when git-http-backend is missing.
func WithoutGit() Option { return func(s *Server) { s.hasGit = false } }

// New starts a fake closed at the end of the test. Unless WithoutGit is
// given, it skips the test when git-http-backend is missing (and fails it
// when CI=true).
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:              t,
		gitRoot:        t.TempDir(),
		hasGit:         true,
		authUser:       DefaultAuthUser,
		orgas:          map[string]string{},
		apps:           map[string]*App{},
		faults:         map[string]*fault{},
		repoReadyAfter: 1,
		flavors:        DefaultFlavors(),
		version:        DockerVersion,
		rnd:            mrand.New(mrand.NewPCG(1, 2)),
	}
	for _, o := range opts {
		o(s)
	}
	if s.hasGit {
		if _, err := os.Stat(GitHTTPBackend); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("clevertest: %s is required in CI: %v", GitHTTPBackend, err)
			}
			t.Skipf("clevertest: %s not found (install git): %v", GitHTTPBackend, err)
		}
		home := t.TempDir()
		s.git = &cgi.Handler{
			Path: GitHTTPBackend,
			Root: "/git",
			Env: []string{
				"GIT_PROJECT_ROOT=" + s.gitRoot,
				"GIT_HTTP_EXPORT_ALL=1",
				"GIT_CONFIG_NOSYSTEM=1",
				"HOME=" + home,
			},
			InheritEnv: []string{"PATH"},
		}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// APIURL returns the API base to use as cc_api_url.
func (s *Server) APIURL() string { return s.URL + "/v2" }

// AddOrga registers an organisation and the token that manages it.
func (s *Server) AddOrga(id, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgas[id] = token
}

// Requests returns every API request received (git excluded).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}
