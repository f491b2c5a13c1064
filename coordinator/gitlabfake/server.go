package gitlabfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultAdminToken        = "glpat-fake-admin-token"
	DefaultRegistrationToken = "GR1348941fake-registration-token"
	// DefaultAcceptTimeout is the default Options.AcceptTimeout.
	DefaultAcceptTimeout = 30 * time.Second
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// AdminToken is the PRIVATE-TOKEN the read API accepts (default
	// DefaultAdminToken).
	AdminToken string
	// RegistrationTokens are the legacy registration tokens POST /runners
	// accepts (default: DefaultRegistrationToken).
	RegistrationTokens []string
	// LegacyRegistrationDisabled makes POST /runners answer 410 Gone.
	LegacyRegistrationDisabled bool
	// ExternalURL is the server URL put in payloads (CI_SERVER_URL,
	// repo_url); default the URL the server listens on.
	ExternalURL string
	// TraceUpdateInterval is the X-GitLab-Trace-Update-Interval value, in
	// seconds (default 3; negative sends 0, for fast tests).
	TraceUpdateInterval int
	// FinalUpdateAccepted is how many times a final PUT (success/failed)
	// is answered 202 before being applied with 200.
	FinalUpdateAccepted int
	// LongPoll, when positive, holds POST /jobs/request whose last_update
	// is current for up to this long (Workhorse long polling).
	LongPoll time.Duration
	// AcceptTimeout is how long a job acquired by a request that
	// advertised two_phase_job_commit stays assigned (pending) waiting for
	// the runner's PUT state=running before it goes back to the queue
	// (default DefaultAcceptTimeout).
	AcceptTimeout time.Duration
	// Seed seeds the fault-injection random source (0: random).
	Seed uint64
}

// Fault is the fault injection of one endpoint template.
type Fault struct {
	// ErrorRate in [0,1] is the probability of answering Status.
	ErrorRate float64
	// Status answered by ErrorRate (default 500).
	Status int
	// Latency delays every answer of the endpoint.
	Latency time.Duration
	// Statuses are forced answers, one per request, consumed in order
	// before normal handling. 0 means "handle normally"; -1 drops the
	// connection without an answer.
	Statuses []int
	// RetryAfter is sent as Retry-After with every faulted answer (e.g.
	// "1" with a forced 429).
	RetryAfter string
}

// Recorded is one request the server received.
type Recorded struct {
	Method   string
	Endpoint string // template, e.g. "/jobs/:id/trace"
	Path     string // escaped path, without query
	Query    string
	Header   http.Header
	Body     []byte
}

// Server is the fake coordinator.
type Server struct {
	opts Options

	mu       sync.Mutex // guards everything below
	url      string
	hs       *httptest.Server
	rng      *mrand.Rand
	runners  map[string]*runner // by token
	nextRID  int64
	jobs     map[int64]*job
	order    []int64 // job ids in enqueue order
	nextJID  int64
	groups   []*group
	counts   map[string]int
	faults   map[string]*Fault
	recorded []Recorded
	changed  chan struct{} // closed and replaced on every state change
}

// New returns a server that is not listening yet; call Start or
// ListenAndServe.
func New(opts Options) *Server {
	if opts.AdminToken == "" {
		opts.AdminToken = DefaultAdminToken
	}
	if opts.RegistrationTokens == nil {
		opts.RegistrationTokens = []string{DefaultRegistrationToken}
	}
	switch {
	case opts.TraceUpdateInterval == 0:
		opts.TraceUpdateInterval = 3
	case opts.TraceUpdateInterval < 0:
		opts.TraceUpdateInterval = 0
	}
	if opts.AcceptTimeout <= 0 {
		opts.AcceptTimeout = DefaultAcceptTimeout
	}
	seed := opts.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	return &Server{
		opts:    opts,
		rng:     mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		runners: map[string]*runner{},
		nextRID: 1000,
		jobs:    map[int64]*job{},
		nextJID: 4820,
		counts:  map[string]int{},
		faults:  map[string]*Fault{},
		changed: make(chan struct{}),
	}
}

// Start serves on a local httptest server and returns s.
func (s *Server) Start() *Server {
	hs := httptest.NewServer(s)
	s.mu.Lock()
	s.hs = hs
	s.url = hs.URL
	s.mu.Unlock()
	return s
}

// Close stops a server started with Start.
func (s *Server) Close() {
	s.mu.Lock()
	hs := s.hs
	s.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// URL returns the base URL (without /api/v4).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// ListenAndServe serves on addr until ctx is done, then shuts down.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.url = "http://" + ln.Addr().String()
	s.mu.Unlock()
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve fake coordinator: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down fake coordinator: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve fake coordinator: %w", err)
	}
	return nil
}

// externalURLLocked is the URL put in payloads.
func (s *Server) externalURLLocked() string {
	if s.opts.ExternalURL != "" {
		return strings.TrimRight(s.opts.ExternalURL, "/")
	}
	return s.url
}

// SetFault sets the fault injection of an endpoint template (as listed by
// Requests, e.g. "/jobs/request"); a zero Fault removes it.
func (s *Server) SetFault(endpoint string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ErrorRate == 0 && f.Latency == 0 && len(f.Statuses) == 0 {
		delete(s.faults, endpoint)
		return
	}
	f.Statuses = slices.Clone(f.Statuses)
	s.faults[endpoint] = &f
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// SetFinalUpdateAccepted changes Options.FinalUpdateAccepted.
func (s *Server) SetFinalUpdateAccepted(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.FinalUpdateAccepted = n
}

// Requests returns how many requests an endpoint received, by template
// ("/jobs/:id/trace") or by method and template ("PATCH /jobs/:id/trace").
// Faulted and rejected requests count.
func (s *Server) Requests(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// TotalRequests returns how many requests the server received.
func (s *Server) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recorded)
}

// Counts returns a copy of every per-endpoint counter.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Recorded returns the requests received so far, optionally only those of
// one endpoint template ("" = all).
func (s *Server) Recorded(endpoint string) []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Recorded
	for _, r := range s.recorded {
		if endpoint == "" || r.Endpoint == endpoint || r.Method+" "+r.Endpoint == endpoint {
			out = append(out, r)
		}
	}
	return out
}

// notifyLocked wakes every waiter.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait blocks until cond (called with s.mu held) is true or ctx is done.
func (s *Server) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// route is one endpoint of the API.
type route struct {
	method   string
	segments []string // ":x" matches any segment
	endpoint string
	handle   func(s *Server, w http.ResponseWriter, r *http.Request, p params, body []byte)
}

// params holds the unescaped values of a route's ":x" segments.
type params map[string]string

func r(method, tmpl string, h func(s *Server, w http.ResponseWriter, r *http.Request, p params, body []byte)) route {
	return route{method: method, segments: strings.Split(strings.Trim(tmpl, "/"), "/"), endpoint: tmpl, handle: h}
}

var routes = []route{
	r(http.MethodPost, "/runners", (*Server).registerRunner),
	r(http.MethodDelete, "/runners", (*Server).deleteRunner),
	r(http.MethodPost, "/runners/verify", (*Server).verifyRunner),
	r(http.MethodDelete, "/runners/managers", (*Server).deleteManager),
	r(http.MethodPost, "/runners/reset_authentication_token", (*Server).resetToken),
	r(http.MethodPost, "/jobs/request", (*Server).requestJob),
	r(http.MethodPut, "/jobs/:id", (*Server).updateJob),
	r(http.MethodPatch, "/jobs/:id/trace", (*Server).patchTrace),
	r(http.MethodGet, "/job", (*Server).currentJob),
	r(http.MethodGet, "/projects/:id/jobs/:job_id", (*Server).projectJob),
	r(http.MethodGet, "/projects/:id/jobs/:job_id/trace", (*Server).projectJobTrace),
	r(http.MethodGet, "/groups/:id", (*Server).getGroup),
	r(http.MethodGet, "/groups/:id/custom_attributes", (*Server).groupAttributes),
	r(http.MethodGet, "/groups/:id/custom_attributes/:key", (*Server).groupAttribute),
	r(http.MethodGet, "/namespaces/:id", (*Server).getNamespace),
}

func match(rt route, segs []string) (params, bool) {
	if len(rt.segments) != len(segs) {
		return nil, false
	}
	p := params{}
	for i, t := range rt.segments {
		if strings.HasPrefix(t, ":") {
			v, err := pathUnescape(segs[i])
			if err != nil {
				return nil, false
			}
			p[t[1:]] = v
			continue
		}
		if t != segs[i] {
			return nil, false
		}
	}
	return p, true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	path := req.URL.EscapedPath()
	rest, ok := strings.CutPrefix(path, "/api/v4/")
	if !ok {
		writeJSON(w, http.StatusNotFound, msg("404 Not Found"))
		return
	}
	segs := strings.Split(strings.TrimRight(rest, "/"), "/")
	var rt *route
	var p params
	methodSeen := false
	for i := range routes {
		if pp, ok := match(routes[i], segs); ok {
			methodSeen = true
			if routes[i].method == req.Method {
				rt, p = &routes[i], pp
				break
			}
		}
	}
	endpoint := "unknown"
	if rt != nil {
		endpoint = rt.endpoint
	}
	s.mu.Lock()
	s.counts[endpoint]++
	s.counts[req.Method+" "+endpoint]++
	s.recorded = append(s.recorded, Recorded{
		Method: req.Method, Endpoint: endpoint, Path: path, Query: req.URL.RawQuery,
		Header: req.Header.Clone(), Body: body,
	})
	fault := s.faults[endpoint]
	var latency time.Duration
	forced := 0
	retryAfter := ""
	if fault != nil {
		latency = fault.Latency
		retryAfter = fault.RetryAfter
		if len(fault.Statuses) > 0 {
			forced = fault.Statuses[0]
			fault.Statuses = fault.Statuses[1:]
		} else if fault.ErrorRate > 0 && s.rng.Float64() < fault.ErrorRate {
			forced = fault.Status
			if forced == 0 {
				forced = http.StatusInternalServerError
			}
		}
	}
	s.notifyLocked()
	s.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-req.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	switch {
	case forced < 0:
		dropConnection(w)
		return
	case forced > 0:
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeJSON(w, forced, msg(fmt.Sprintf("%d %s", forced, http.StatusText(forced))))
		return
	}
	if rt == nil {
		if methodSeen {
			writeJSON(w, http.StatusMethodNotAllowed, msg("405 Method Not Allowed"))
			return
		}
		writeJSON(w, http.StatusNotFound, msg("404 Not Found"))
		return
	}
	rt.handle(s, w, req, p, body)
}

func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func msg(m string) map[string]string { return map[string]string{"message": m} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// bodyParams decodes a JSON body (or form/query values) into a map of
// strings and raw JSON values.
func bodyParams(r *http.Request, body []byte) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if len(body) > 0 && strings.Contains(r.Header.Get("Content-Type"), "json") {
		_ = json.Unmarshal(body, &out)
	}
	for k, vs := range r.URL.Query() {
		if _, ok := out[k]; !ok && len(vs) > 0 {
			b, _ := json.Marshal(vs[0])
			out[k] = b
		}
	}
	return out
}

// str returns a string parameter ("" when absent or not a string).
func str(p map[string]json.RawMessage, k string) string {
	var s string
	if raw, ok := p[k]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}
