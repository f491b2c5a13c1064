package gitlabfake

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

type group struct {
	id       int64
	fullPath string
	parentID int64
	attrs    map[string]string
}

// AddGroup declares a group (id and full path) with custom attributes,
// replacing any group with the same id or path.
func (s *Server) AddGroup(id int64, fullPath string, attrs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &group{id: id, fullPath: fullPath, attrs: map[string]string{}}
	maps.Copy(g.attrs, attrs)
	kept := s.groups[:0]
	for _, o := range s.groups {
		if o.id != id && o.fullPath != fullPath {
			kept = append(kept, o)
		}
	}
	s.groups = append(kept, g)
}

// SetGroupAttributes replaces the custom attributes of a group given by id
// or full path, creating it (with a made-up id, or path "group-<id>") when
// unknown.
func (s *Server) SetGroupAttributes(idOrPath string, attrs map[string]string) {
	s.mu.Lock()
	g := s.groupLocked(idOrPath)
	s.mu.Unlock()
	if g != nil {
		s.AddGroup(g.id, g.fullPath, attrs)
		return
	}
	if id, err := strconv.ParseInt(idOrPath, 10, 64); err == nil {
		s.AddGroup(id, "group-"+idOrPath, attrs)
		return
	}
	s.mu.Lock()
	id := int64(100 + len(s.groups))
	s.mu.Unlock()
	s.AddGroup(id, idOrPath, attrs)
}

func (s *Server) groupLocked(idOrPath string) *group {
	id, err := strconv.ParseInt(idOrPath, 10, 64)
	for _, g := range s.groups {
		if (err == nil && g.id == id) || (err != nil && g.fullPath == idOrPath) {
			return g
		}
	}
	return nil
}

// adminOK checks the PRIVATE-TOKEN (or Bearer token) of a read call and
// writes 401 when it is not the admin token.
func (s *Server) adminOK(w http.ResponseWriter, r *http.Request) bool {
	tok := r.Header.Get("PRIVATE-TOKEN")
	if tok == "" {
		tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if tok == "" || tok != s.opts.AdminToken {
		writeJSON(w, http.StatusUnauthorized, msg("401 Unauthorized"))
		return false
	}
	return true
}

func (s *Server) projectJobLocked(w http.ResponseWriter, p params) *job {
	pid, _ := strconv.ParseInt(p["id"], 10, 64)
	jid, _ := strconv.ParseInt(p["job_id"], 10, 64)
	j := s.jobs[jid]
	if j == nil || (j.ProjectID != pid && j.spec.Project != p["id"]) {
		writeJSON(w, http.StatusNotFound, msg("404 Job Not Found"))
		return nil
	}
	return j
}

// GET /projects/:id/jobs/:job_id.
func (s *Server) projectJob(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	if !s.adminOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.projectJobLocked(w, p); j != nil {
		writeJSON(w, http.StatusOK, jobJSON(j))
	}
}

// GET /projects/:id/jobs/:job_id/trace: 404 while the job has no log.
func (s *Server) projectJobTrace(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	if !s.adminOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.projectJobLocked(w, p)
	if j == nil {
		return
	}
	if !j.traceSeen {
		writeJSON(w, http.StatusNotFound, msg("404 Trace Not Found"))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(j.Trace)
}

func attrList(g *group) []map[string]string {
	keys := make([]string, 0, len(g.attrs))
	for k := range g.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, map[string]string{"key": k, "value": g.attrs[k]})
	}
	return out
}

func (s *Server) groupOr404Locked(w http.ResponseWriter, p params) *group {
	g := s.groupLocked(p["id"])
	if g == nil {
		writeJSON(w, http.StatusNotFound, msg("404 Group Not Found"))
	}
	return g
}

func groupJSON(g *group, kind string, withAttrs bool) map[string]any {
	name := g.fullPath[strings.LastIndexByte(g.fullPath, '/')+1:]
	out := map[string]any{"id": g.id, "name": name, "path": name, "full_path": g.fullPath, "kind": kind}
	if g.parentID != 0 {
		out["parent_id"] = g.parentID
	} else {
		out["parent_id"] = nil
	}
	if withAttrs {
		out["custom_attributes"] = attrList(g)
	}
	return out
}

// GET /groups/:id[?with_custom_attributes=true].
func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	if !s.adminOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groupOr404Locked(w, p); g != nil {
		writeJSON(w, http.StatusOK, groupJSON(g, "", r.URL.Query().Get("with_custom_attributes") == "true"))
	}
}

// GET /namespaces/:id.
func (s *Server) getNamespace(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	if !s.adminOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groupOr404Locked(w, p); g != nil {
		writeJSON(w, http.StatusOK, groupJSON(g, "group", false))
	}
}

// GET /groups/:id/custom_attributes.
func (s *Server) groupAttributes(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	if !s.adminOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groupOr404Locked(w, p); g != nil {
		writeJSON(w, http.StatusOK, attrList(g))
	}
}

// GET /groups/:id/custom_attributes/:key.
func (s *Server) groupAttribute(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	if !s.adminOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupOr404Locked(w, p)
	if g == nil {
		return
	}
	v, ok := g.attrs[p["key"]]
	if !ok {
		writeJSON(w, http.StatusNotFound, msg("404 Not found"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": p["key"], "value": v})
}
