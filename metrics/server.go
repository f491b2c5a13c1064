package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/dispatcher"
)

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
)

// SnapshotSource gives the dispatcher's current snapshot;
// *dispatcher.Dispatcher implements it.
type SnapshotSource interface {
	Snapshot() dispatcher.Snapshot
}

// Server is the local HTTP server on listen_address: /metrics, /healthz,
// /readyz, the job API and /debug/jobs/list. Start it once, then Shutdown.
type Server struct {
	addr      string
	src       SnapshotSource
	readiness func() error
	log       logrus.FieldLogger
	jobURL    func(dispatcher.JobView) string
	srv       *http.Server
	ln        net.Listener
	done      chan struct{}
}

// ServerOption tunes NewServer.
type ServerOption func(*Server)

// WithCoordinatorURLs makes /debug/jobs/list print each job's URL on its
// coordinator: urls maps runner labels to coordinator base URLs
// (credentials in a URL are dropped).
func WithCoordinatorURLs(urls map[string]string) ServerOption {
	clean := make(map[string]string, len(urls))
	for k, v := range urls {
		if u, err := url.Parse(v); err == nil {
			u.User = nil
			clean[k] = strings.TrimRight(u.String(), "/")
		}
	}
	return func(s *Server) {
		s.jobURL = func(v dispatcher.JobView) string {
			return fmt.Sprintf("%s/api/v4/projects/%d/jobs/%d", clean[v.Runner], v.ProjectID, v.JobID)
		}
	}
}

// NewServer returns a server for addr (host:port; port 0 picks one).
// readiness reports whether the daemon is ready (nil: ready), e.g.
// ReadyWhenClosed(d.Ready()); /readyz also requires at least one runner
// being polled in the snapshot. log may be nil.
func NewServer(addr string, reg *prometheus.Registry, d SnapshotSource, readiness func() error, log logrus.FieldLogger, opts ...ServerOption) *Server {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	s := &Server{addr: addr, src: d, readiness: readiness, log: log, done: make(chan struct{})}
	s.jobURL = func(v dispatcher.JobView) string {
		return fmt.Sprintf("/api/v4/projects/%d/jobs/%d", v.ProjectID, v.JobID)
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          log,
		Timeout:           writeTimeout / 2,
		EnableOpenMetrics: true,
	})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET "+JobsPath, s.jobs)
	mux.HandleFunc("GET "+JobsPath+"/{runner}/{id}", s.job)
	mux.HandleFunc("GET /debug/jobs/list", s.debugJobs)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          nil,
	}
	return s
}

// Handler returns the server's routes (tests, embedding).
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Start listens on the address and serves in the background. It fails if
// the address cannot be bound.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.log.WithField("address", ln.Addr().String()).Info("metrics and local API listening")
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("metrics server stopped")
		}
	}()
	return nil
}

// Addr returns the bound address (after Start), else the configured one.
func (s *Server) Addr() string {
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Shutdown stops the server gracefully within ctx; it is a no-op before
// Start.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("shut down metrics server: %w", err)
	}
	return nil
}

// ErrNotReady is returned by ReadyWhenClosed's function until its channel
// is closed.
var ErrNotReady = errors.New("state not restored yet")

// ReadyWhenClosed returns a readiness function that fails until ready is
// closed (pass (*dispatcher.Dispatcher).Ready()).
func ReadyWhenClosed(ready <-chan struct{}) func() error {
	return func() error {
		select {
		case <-ready:
			return nil
		default:
			return ErrNotReady
		}
	}
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.notReady(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// notReady returns why the daemon is not ready, or nil.
func (s *Server) notReady() error {
	if s.readiness != nil {
		if err := s.readiness(); err != nil {
			return err
		}
	}
	snap := s.src.Snapshot()
	if snap.Stopping {
		return errors.New("shutting down")
	}
	for _, r := range snap.Runners {
		if !r.Forbidden && !r.Removed {
			return nil
		}
	}
	return errors.New("no runner is being polled")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError is the JSON body of an API error.
type apiError struct {
	Error string `json:"error"`
}

func (s *Server) jobs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jobListFromSnapshot(s.src.Snapshot()))
}

func (s *Server) job(w http.ResponseWriter, r *http.Request) {
	runner := r.PathValue("runner")
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "job id must be an integer"})
		return
	}
	for _, v := range s.src.Snapshot().Jobs {
		if v.JobID == id && (v.Runner == runner || v.RunnerID == runner) {
			writeJSON(w, http.StatusOK, jobFromView(v))
			return
		}
	}
	writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no tracked job %d for runner %q", id, runner)})
}

// debugState maps a phase to gitlab-runner's runtime state words.
func debugState(phase string) string {
	switch phase {
	case "pending", "provisioned":
		return "pending"
	case "launched", "running":
		return "running"
	default:
		return "finished"
	}
}

// debugJobs is gitlab-runner's /debug/jobs/list (version 2): one line per
// tracked job.
func (s *Server) debugJobs(w http.ResponseWriter, _ *http.Request) {
	snap := s.src.Snapshot()
	executors := map[string]string{}
	for _, r := range snap.Runners {
		executors[r.Name] = r.Executor
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-List-Version", "2")
	var b strings.Builder
	for _, v := range snap.Jobs {
		var d time.Duration
		if !v.AcquiredAt.IsZero() {
			d = snap.Time.Sub(v.AcquiredAt).Truncate(time.Millisecond)
		}
		fmt.Fprintf(&b, "url=%s state=%s stage=%s executor_stage=%s duration=%s\n",
			s.jobURL(v), debugState(v.Phase), v.Phase, executors[v.Runner], d)
	}
	_, _ = w.Write([]byte(b.String()))
}
