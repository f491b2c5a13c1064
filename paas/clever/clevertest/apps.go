package clevertest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

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

// Apps returns a copy of every application ever created, in creation order.
func (s *Server) Apps() []App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]App, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.apps[id].clone())
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
	return a.clone(), true
}

// clone copies a, maps included.
func (a *App) clone() App {
	c := *a
	c.Create = maps.Clone(a.Create)
	c.Env = maps.Clone(a.Env)
	return c
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

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
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
	a, ok := s.liveAppLocked(w, orga, appID)
	if !ok {
		return
	}
	a.Env, a.EnvRaw = env, raw
	writeJSON(w, 200, s.appJSONLocked(a))
}

// liveAppLocked returns the application appID of orga, or writes a Clever
// 404 when it does not exist (anymore) there.
func (s *Server) liveAppLocked(w http.ResponseWriter, orga, appID string) (*App, bool) {
	a, ok := s.apps[appID]
	if !ok || a.Deleted || a.Orga != orga {
		writeError(w, 404, 4004, "Not Found: the application does not exist")
		return nil, false
	}
	return a, true
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
