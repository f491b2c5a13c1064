package clevertest

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
)

// RequireScheme makes organisation routes accept only this Authorization
// scheme ("token" or "Bearer"; "" accepts both).
func (s *Server) RequireScheme(scheme string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requireScheme = scheme
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
	if !sleep(r, latency) {
		return
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
		a, ok := s.liveAppLocked(w, orga, appID)
		if !ok {
			s.mu.Unlock()
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
		a, ok := s.liveAppLocked(w, orga, appID)
		if !ok {
			s.mu.Unlock()
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
