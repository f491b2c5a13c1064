package clevertest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Endpoint names for the fault knobs.
const (
	EndpointFlavors   = "flavors"
	EndpointInstances = "instances"
	EndpointCreate    = "create"
	EndpointEnv       = "env"
	EndpointGet       = "get"
	EndpointList      = "list"
	EndpointDelete    = "delete"
	// EndpointPush is the git smart-HTTP receive-pack exchange.
	EndpointPush = "push"
)

// Catalogue values served by the fake.
const (
	// DockerVersion is the instanceVersion of the Docker instance type.
	DockerVersion = "20260101"
	// DockerVariant is the variant id of the Docker instance type.
	DockerVariant = "a7a2b3c4-0000-4000-8000-00000000d0c4"
	// HeptapodVariant is the Heptapod runner variant, also accepted.
	HeptapodVariant = "70d676a0-a775-4dc9-a43d-3121036e8515"
	// DefaultAuthUser is the git basic-auth user name expected by default.
	DefaultAuthUser = "Jenkins"
	// GitHTTPBackend is where git-http-backend is looked for.
	GitHTTPBackend = "/usr/lib/git-core/git-http-backend"
)

// Flavor is one entry of the flavor catalogue.
type Flavor struct {
	Name      string
	MemMiB    int
	CPUs      float64
	Available bool
}

// DefaultFlavors returns the catalogue served by default: heptapod-runner-XS
// to 3XL, an unavailable 4XL and jenkins-runner decoys.
func DefaultFlavors() []Flavor {
	return []Flavor{
		{"heptapod-runner-XS", 2048, 1, true},
		{"heptapod-runner-S", 4096, 2, true},
		{"heptapod-runner-M", 8192, 4, true},
		{"heptapod-runner-L", 12288, 6, true},
		{"heptapod-runner-XL", 16384, 8, true},
		{"heptapod-runner-2XL", 24576, 12, true},
		{"heptapod-runner-3XL", 32768, 16, true},
		{"heptapod-runner-4XL", 65536, 16, false},
		{"jenkins-runner-M", 8192, 4, true},
		{"jenkins-runner-XL", 16384, 8, true},
	}
}

// App is the fake's record of one application.
type App struct {
	ID   string
	Orga string
	Name string
	// Create is the decoded create body, CreateRaw the body as received.
	Create    map[string]any
	CreateRaw json.RawMessage
	// Env is the last environment set, EnvRaw its body as received.
	Env    map[string]string
	EnvRaw json.RawMessage
	// Deleted is true once DELETE succeeded.
	Deleted bool
	// Gets counts GET requests of the application.
	Gets int
	// Pushes counts successful receive-pack exchanges.
	Pushes   int
	CommitID string
	State    string
}

// Request is one API request as seen by the fake.
type Request struct {
	Method   string
	Path     string
	Endpoint string
	// Scheme is the Authorization scheme word ("token", "Bearer") or "".
	Scheme string
}

type fault struct {
	// statuses are returned by the next calls, in order (0 = pass).
	statuses []int
	// after: the call is processed before the fault status is returned.
	after   bool
	rate    float64
	rateSt  int
	latency time.Duration
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

// RequireScheme makes organisation routes accept only this Authorization
// scheme ("token" or "Bearer"; "" accepts both).
func (s *Server) RequireScheme(scheme string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requireScheme = scheme
}

// FailNext makes the next calls of endpoint return these statuses in order
// (0 lets a call through), with a Clever error body.
func (s *Server) FailNext(endpoint string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faultLocked(endpoint)
	f.statuses = append(f.statuses, statuses...)
}

// FailNextAfterProcessing is FailNext, but each failing call is processed
// first (the app is created, the env set…): an ambiguous failure.
func (s *Server) FailNextAfterProcessing(endpoint string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faultLocked(endpoint)
	f.statuses = append(f.statuses, statuses...)
	f.after = true
}

// SetErrorRate makes a fraction rate of endpoint's calls fail with status
// (deterministic pseudo-random sequence).
func (s *Server) SetErrorRate(endpoint string, rate float64, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faultLocked(endpoint)
	f.rate, f.rateSt = rate, status
}

// SetLatency delays every call of endpoint by d.
func (s *Server) SetLatency(endpoint string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultLocked(endpoint).latency = d
}

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

// SetInstanceVersion changes the current Docker instance version; creating
// with another one fails with id 9017.
func (s *Server) SetInstanceVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
}

// Apps returns a copy of every application ever created, in creation order.
func (s *Server) Apps() []App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]App, 0, len(s.order))
	for _, id := range s.order {
		a := *s.apps[id]
		a.Create = maps.Clone(a.Create)
		a.Env = maps.Clone(a.Env)
		out = append(out, a)
	}
	return out
}

// App returns a copy of one application.
func (s *Server) App(id string) (App, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return App{}, false
	}
	c := *a
	c.Create = maps.Clone(a.Create)
	c.Env = maps.Clone(a.Env)
	return c, true
}

// Live returns the applications not deleted.
func (s *Server) Live() []App {
	var out []App
	for _, a := range s.Apps() {
		if !a.Deleted {
			out = append(out, a)
		}
	}
	return out
}

// Requests returns every API request received (git excluded).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
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

func (s *Server) faultLocked(endpoint string) *fault {
	f, ok := s.faults[endpoint]
	if !ok {
		f = &fault{}
		s.faults[endpoint] = f
	}
	return f
}

// injected returns the status to fail with (0 = none), whether it applies
// after processing, and the latency.
func (s *Server) injected(endpoint string) (status int, after bool, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.faults[endpoint]
	if !ok {
		return 0, false, 0
	}
	if len(f.statuses) > 0 {
		status, f.statuses = f.statuses[0], f.statuses[1:]
		if len(f.statuses) == 0 {
			after = f.after
			f.after = false
		} else {
			after = f.after
		}
		return status, after, f.latency
	}
	if f.rate > 0 && s.rnd.Float64() < f.rate {
		return f.rateSt, false, f.latency
	}
	return 0, false, f.latency
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Sozu-Id", "fake-"+newID()[:8])
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status, id int, msg string) {
	writeJSON(w, status, map[string]any{"id": id, "message": msg, "type": "error"})
}

// writeFault writes an injected failure: JSON Clever errors for 4xx, a
// plain-text body for 500 (real Clever does that too), Retry-After on 429.
func writeFault(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "0")
		writeError(w, status, 429, "Too many requests")
	case status == http.StatusInternalServerError:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "Internal Server Error")
	case status >= 500:
		writeError(w, status, 5000+status%100, "Service temporarily unavailable")
	default:
		writeError(w, status, 4000+status%100, fmt.Sprintf("injected error %d", status))
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/git/") {
		s.serveGit(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	endpoint, orga, appID := route(r.Method, parts)
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Endpoint: endpoint, Scheme: scheme})
	s.mu.Unlock()
	if endpoint == "" {
		writeError(w, http.StatusNotFound, 404, "Not Found")
		return
	}
	status, after, latency := s.injected(endpoint)
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 && !after {
		writeFault(w, status)
		return
	}
	rec := httptest.NewRecorder()
	s.serveAPI(rec, r, endpoint, orga, appID)
	if status != 0 {
		writeFault(w, status)
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// route maps a /v2 path to an endpoint name.
func route(method string, p []string) (endpoint, orga, app string) {
	switch {
	case len(p) == 1 && p[0] == "self" && method == "GET":
		return "self", "", ""
	case len(p) == 2 && p[0] == "products" && p[1] == "flavors" && method == "GET":
		return EndpointFlavors, "", ""
	case len(p) == 2 && p[0] == "products" && p[1] == "instances" && method == "GET":
		return EndpointInstances, "", ""
	case len(p) == 3 && p[0] == "organisations" && p[2] == "applications":
		switch method {
		case "GET":
			return EndpointList, p[1], ""
		case "POST":
			return EndpointCreate, p[1], ""
		}
	case len(p) == 4 && p[0] == "organisations" && p[2] == "applications":
		switch method {
		case "GET":
			return EndpointGet, p[1], p[3]
		case "DELETE":
			return EndpointDelete, p[1], p[3]
		}
	case len(p) == 5 && p[0] == "organisations" && p[2] == "applications" && p[4] == "env" && method == "PUT":
		return EndpointEnv, p[1], p[3]
	}
	return "", "", ""
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, endpoint, orga, appID string) {
	switch endpoint {
	case "self":
		writeJSON(w, 200, map[string]any{"id": "user_fake", "name": "fake"})
		return
	case EndpointFlavors:
		s.serveFlavors(w, r)
		return
	case EndpointInstances:
		s.serveInstances(w)
		return
	}
	if !s.authorized(w, r, orga) {
		return
	}
	switch endpoint {
	case EndpointList:
		s.mu.Lock()
		var out []map[string]any
		for _, id := range s.order {
			if a := s.apps[id]; a.Orga == orga && !a.Deleted {
				out = append(out, s.appJSONLocked(a))
			}
		}
		s.mu.Unlock()
		if out == nil {
			out = []map[string]any{}
		}
		writeJSON(w, 200, out)
	case EndpointCreate:
		s.serveCreate(w, r, orga)
	case EndpointGet:
		s.mu.Lock()
		a, ok := s.apps[appID]
		if !ok || a.Deleted || a.Orga != orga {
			s.mu.Unlock()
			writeError(w, 404, 4004, "Not Found: the application does not exist")
			return
		}
		body := s.appJSONLocked(a)
		a.Gets++
		s.mu.Unlock()
		writeJSON(w, 200, body)
	case EndpointEnv:
		s.serveEnv(w, r, orga, appID)
	case EndpointDelete:
		s.mu.Lock()
		a, ok := s.apps[appID]
		if !ok || a.Deleted || a.Orga != orga {
			s.mu.Unlock()
			writeError(w, 404, 4004, "Not Found: the application does not exist")
			return
		}
		a.Deleted = true
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{"id": 302, "message": "deleted", "type": "success"})
	}
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request, orga string) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	want, known := s.orgas[orga]
	required := s.requireScheme
	s.mu.Unlock()
	schemeOK := scheme == "token" || scheme == "Bearer"
	if required != "" {
		schemeOK = scheme == required
	}
	if !schemeOK || tok == "" || (known && tok != want) {
		writeError(w, http.StatusUnauthorized, 401, "Not authenticated")
		return false
	}
	if !known {
		writeError(w, http.StatusForbidden, 403, "You don't have access to this organisation")
		return false
	}
	return true
}

func flavorJSON(f Flavor) map[string]any {
	return map[string]any{
		"name": f.Name, "mem": f.MemMiB, "cpus": f.CPUs, "gpus": 0, "disk": nil,
		"price": math.Round(float64(f.MemMiB)/1024*0.17*1e4) / 1e4, "available": f.Available,
		"microservice": false, "machine_learning": false, "nice": 0,
		"price_id": strings.ReplaceAll(f.Name, "-", "."),
		"memory": map[string]any{
			"unit": "B", "value": int64(f.MemMiB) << 20, "formatted": fmt.Sprintf("%d MiB", f.MemMiB),
		},
		"cpuFactor": 1.0, "memFactor": 1.0,
	}
}

func (s *Server) serveFlavors(w http.ResponseWriter, r *http.Request) {
	ctx := r.URL.Query().Get("context")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, f := range s.flavors {
		if ctx == "" || strings.HasPrefix(f.Name, ctx+"-") || strings.HasPrefix(f.Name, "jenkins-runner-") {
			out = append(out, flavorJSON(f))
		}
	}
	writeJSON(w, 200, out)
}

func (s *Server) serveInstances(w http.ResponseWriter) {
	s.mu.Lock()
	version := s.version
	s.mu.Unlock()
	writeJSON(w, 200, []map[string]any{
		{
			"type": "node", "version": "20251010", "name": "Node", "enabled": true, "comingSoon": false,
			"variant":     map[string]any{"id": newID(), "slug": "node", "name": "Node", "deployType": "node"},
			"description": "Node.js runtime", "maxInstances": 40, "tags": []string{}, "deployments": []string{"git"},
		},
		{
			"type": "docker", "version": version, "name": "Docker", "enabled": true, "comingSoon": false,
			"variant":     map[string]any{"id": DockerVariant, "slug": "docker", "name": "Docker", "deployType": "docker"},
			"description": "Docker runtime", "maxInstances": 40, "tags": []string{}, "deployments": []string{"git"},
			"flavors": []any{}, "defaultFlavor": map[string]any{"name": "XS"},
		},
		{
			"type": "docker", "version": "20190101", "name": "Docker", "enabled": false, "comingSoon": false,
			"variant": map[string]any{"id": newID(), "slug": "docker", "name": "Docker (old)", "deployType": "docker"},
		},
	})
}

func (s *Server) flavorLocked(name string) (Flavor, bool) {
	for _, f := range s.flavors {
		if f.Name == name && f.Available {
			return f, true
		}
	}
	return Flavor{}, false
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, orga string) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, 400, 400, "cannot read body")
		return
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		writeError(w, 400, 400, "invalid JSON body")
		return
	}
	str := func(k string) string { v, _ := body[k].(string); return v }
	s.mu.Lock()
	defer s.mu.Unlock()
	variant := str("instanceVariant")
	if str("instanceType") != "docker" || str("instanceVersion") != s.version ||
		(variant != DockerVariant && variant != HeptapodVariant) {
		writeError(w, 400, 9017, "The specified instance does not exist")
		return
	}
	if str("name") == "" || str("deploy") != "git" {
		writeError(w, 400, 4001, "Invalid application: name and deploy=git are required")
		return
	}
	for _, k := range []string{"minFlavor", "maxFlavor"} {
		if _, ok := s.flavorLocked(str(k)); !ok {
			writeError(w, 400, 4010, fmt.Sprintf("The flavor %q does not exist", str(k)))
			return
		}
	}
	id := "app_" + newID()
	a := &App{
		ID: id, Orga: orga, Name: str("name"), Create: body, CreateRaw: raw,
		Env: map[string]string{}, State: "SHOULD_BE_DOWN",
	}
	if s.hasGit {
		if err := initRepo(s.repoDir(id)); err != nil {
			writeError(w, 500, 500, "cannot create repository: "+err.Error())
			return
		}
	}
	s.apps[id] = a
	s.order = append(s.order, id)
	writeJSON(w, 200, s.appJSONLocked(a))
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

func (s *Server) serveEnv(w http.ResponseWriter, r *http.Request, orga, appID string) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, 400, 400, "cannot read body")
		return
	}
	var env map[string]string
	if err := json.Unmarshal(raw, &env); err != nil {
		writeError(w, 400, 557, "Application environment is invalid")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	if !ok || a.Deleted || a.Orga != orga {
		writeError(w, 404, 4004, "Not Found: the application does not exist")
		return
	}
	a.Env, a.EnvRaw = env, raw
	writeJSON(w, 200, s.appJSONLocked(a))
}

func (s *Server) repoStateLocked(a *App) string {
	if s.repoReadyAfter >= 0 && a.Gets >= s.repoReadyAfter {
		return "CREATED"
	}
	return "CREATING"
}

func (s *Server) appJSONLocked(a *App) map[string]any {
	str := func(k string) string { v, _ := a.Create[k].(string); return v }
	minF, _ := s.flavorLocked(str("minFlavor"))
	maxF, _ := s.flavorLocked(str("maxFlavor"))
	env := []map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		env = append(env, map[string]string{"name": k, "value": a.Env[k]})
	}
	ssh := "git+ssh://git@push-n1-par-clevercloud-customers.services.clever-cloud.com/" + a.ID + ".git"
	lifetime := str("instanceLifetime")
	if lifetime == "" {
		lifetime = "REGULAR"
	}
	return map[string]any{
		"id": a.ID, "name": a.Name, "description": a.Name, "zone": str("zone"), "zoneId": "zone_" + str("zone"),
		"ownerId": a.Orga,
		"instance": map[string]any{
			"type": "docker", "version": str("instanceVersion"),
			"variant":      map[string]any{"id": str("instanceVariant"), "slug": "docker"},
			"minInstances": a.Create["minInstances"], "maxInstances": a.Create["maxInstances"],
			"maxAllowedInstances": 40, "minFlavor": flavorJSON(minF), "maxFlavor": flavorJSON(maxF),
			"flavors": []any{}, "defaultEnv": map[string]string{}, "lifetime": lifetime,
			"instanceAndVersion": "docker-" + str("instanceVersion"),
		},
		"deployment": map[string]any{
			"shutdownable": false, "type": "GIT", "repoState": s.repoStateLocked(a),
			"url": ssh, "httpUrl": s.URL + "/git/" + a.ID + ".git",
		},
		"deployUrl":    ssh,
		"vhosts":       []map[string]string{{"fqdn": strings.ReplaceAll(a.ID, "_", "-") + ".cleverapps.io"}},
		"creationDate": time.Now().UnixMilli(), "last_deploy": a.Pushes, "archived": false,
		"stickySessions": false, "homogeneous": false, "favourite": false, "cancelOnPush": false,
		"separateBuild": false, "state": a.State, "commitId": a.CommitID, "branch": "master",
		"forceHttps": "DISABLED", "env": env,
	}
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
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
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
