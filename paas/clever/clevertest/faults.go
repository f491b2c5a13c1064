package clevertest

import (
	"fmt"
	"io"
	"net/http"
	"time"
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

type fault struct {
	// statuses are returned by the next calls, in order (0 = pass).
	statuses []int
	// after: the call is processed before the fault status is returned.
	after   bool
	rate    float64
	rateSt  int
	latency time.Duration
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

// sleep waits d (an injected latency), or less when the client gives up:
// then it returns false.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
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
