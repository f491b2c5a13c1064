package clevertest

import (
	"fmt"
	"math"
	"net/http"
	"strings"
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

// SetInstanceVersion changes the current Docker instance version; creating
// with another one fails with id 9017.
func (s *Server) SetInstanceVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
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
