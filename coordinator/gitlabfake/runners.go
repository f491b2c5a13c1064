package gitlabfake

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

var pathUnescape = url.PathUnescape

// Runner is a snapshot of a registered runner.
type Runner struct {
	ID          int64
	Token       string
	Description string
	Paused      bool
	Locked      bool
	RunUntagged bool
	TagList     []string
	// Legacy is true for runners created with a registration token.
	Legacy bool
	// Managers holds the system_ids that verified or requested jobs, with
	// the info object they sent last.
	Managers map[string]json.RawMessage
	// LastJobRequest is the body of the runner's last POST /jobs/request.
	LastJobRequest json.RawMessage
}

type runner struct {
	Runner
	queueVersion string
}

func (rn *runner) snapshot() Runner {
	out := rn.Runner
	out.TagList = slices.Clone(rn.TagList)
	out.Managers = maps.Clone(rn.Managers)
	return out
}

// AddRunner creates a runner with the given authentication token (a
// "created runner" glrt- token, as if made in the UI) and returns its id.
func (s *Server) AddRunner(token string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addRunnerLocked(token, false).ID
}

func (s *Server) addRunnerLocked(token string, legacy bool) *runner {
	s.nextRID++
	rn := &runner{
		Runner:       Runner{ID: s.nextRID, Token: token, Legacy: legacy, RunUntagged: true, Managers: map[string]json.RawMessage{}},
		queueVersion: randomHex(16),
	}
	s.runners[token] = rn
	s.notifyLocked()
	return rn
}

// SetPaused pauses or resumes the runner with this token.
func (s *Server) SetPaused(token string, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rn := s.runners[token]; rn != nil {
		rn.Paused = paused
		rn.queueVersion = randomHex(16)
		s.notifyLocked()
	}
}

// Runners returns a snapshot of every registered runner, by id.
func (s *Server) Runners() []Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Runner, 0, len(s.runners))
	for _, rn := range s.runners {
		out = append(out, rn.snapshot())
	}
	slices.SortFunc(out, func(a, b Runner) int { return int(a.ID - b.ID) })
	return out
}

// RunnerByToken returns a snapshot of the runner with this token.
func (s *Server) RunnerByToken(token string) (Runner, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runners[token]
	if rn == nil {
		return Runner{}, false
	}
	return rn.snapshot(), true
}

func boolParam(p map[string]json.RawMessage, k string, def bool) bool {
	raw, ok := p[k]
	if !ok {
		return def
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "true"
	}
	return def
}

func tagList(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		for t := range strings.SplitSeq(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				list = append(list, t)
			}
		}
	}
	return list
}

// POST /runners: legacy registration.
func (s *Server) registerRunner(w http.ResponseWriter, r *http.Request, _ params, body []byte) {
	p := bodyParams(r, body)
	tok := str(p, "token")
	if tok == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "token is missing"})
		return
	}
	if s.opts.LegacyRegistrationDisabled {
		writeJSON(w, http.StatusGone, msg("410 Gone"))
		return
	}
	if !slices.Contains(s.opts.RegistrationTokens, tok) {
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden"))
		return
	}
	s.mu.Lock()
	rn := s.addRunnerLocked("glrtr-"+randomHex(10), true)
	rn.Description = str(p, "description")
	rn.Paused = boolParam(p, "paused", !boolParam(p, "active", true))
	rn.Locked = boolParam(p, "locked", true)
	rn.TagList = tagList(p["tag_list"])
	rn.RunUntagged = boolParam(p, "run_untagged", len(rn.TagList) == 0)
	id, token := rn.ID, rn.Token
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "token": token, "token_expires_at": nil})
}

// POST /runners/verify.
func (s *Server) verifyRunner(w http.ResponseWriter, r *http.Request, _ params, body []byte) {
	p := bodyParams(r, body)
	s.mu.Lock()
	rn := s.runners[str(p, "token")]
	if rn == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden"))
		return
	}
	sid := str(p, "system_id")
	if sid == "" {
		sid = "<legacy>"
	}
	rn.Managers[sid] = p["info"]
	s.notifyLocked()
	id, token := rn.ID, rn.Token
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "token": token, "token_expires_at": nil})
}

// DELETE /runners.
func (s *Server) deleteRunner(w http.ResponseWriter, r *http.Request, _ params, body []byte) {
	p := bodyParams(r, body)
	s.mu.Lock()
	tok := str(p, "token")
	if s.runners[tok] == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden"))
		return
	}
	delete(s.runners, tok)
	s.notifyLocked()
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// DELETE /runners/managers.
func (s *Server) deleteManager(w http.ResponseWriter, r *http.Request, _ params, body []byte) {
	p := bodyParams(r, body)
	tok, sid := str(p, "token"), str(p, "system_id")
	if tok == "" || sid == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "token, system_id are missing"})
		return
	}
	s.mu.Lock()
	rn := s.runners[tok]
	if rn == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden"))
		return
	}
	if _, ok := rn.Managers[sid]; !ok {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, msg("404 Runner manager not found"))
		return
	}
	delete(rn.Managers, sid)
	s.notifyLocked()
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// POST /runners/reset_authentication_token.
func (s *Server) resetToken(w http.ResponseWriter, r *http.Request, _ params, body []byte) {
	p := bodyParams(r, body)
	s.mu.Lock()
	old := str(p, "token")
	rn := s.runners[old]
	if rn == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, msg("403 Forbidden"))
		return
	}
	prefix := "glrt-"
	if rn.Legacy {
		prefix = "glrtr-"
	}
	delete(s.runners, old)
	rn.Token = prefix + randomHex(10)
	s.runners[rn.Token] = rn
	for _, j := range s.jobs {
		if j.spec.RunnerToken == old {
			j.spec.RunnerToken = rn.Token
		}
	}
	s.notifyLocked()
	tok := rn.Token
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok})
}
