package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// DependencyProxyVariable is the job variable holding GitLab's group
// dependency-proxy prefix; the rewrite is active only when it is non-empty.
const DependencyProxyVariable = "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX"

// maxExpandedLen bounds a variable expansion, so that chained variables
// (A=$B$B, B=$C$C, …) cannot blow up memory.
const maxExpandedLen = 1 << 20

// errExpansionTooLarge is returned when an expansion passes maxExpandedLen.
var errExpansionTooLarge = errors.New("variable expansion too large")

// RewriteDependencyProxy applies the dependency-proxy rewrite of reference
// §7.3 to a job payload: when the job variable
// CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX is set, the main image and every
// service whose (variable-expanded) name is on Docker Hub are pulled
// through the proxy (<prefix>/<repository>[:tag][@digest]), and such
// services get an alias derived from their name unless they have one.
// Anything else is left untouched; without the variable the payload is
// returned unchanged, byte for byte.
func RewriteDependencyProxy(payload json.RawMessage) (json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return nil, fmt.Errorf("decode job payload: %w", err)
	}
	if top == nil {
		return nil, errors.New("decode job payload: not a JSON object")
	}
	var vars []coordinator.Variable
	if raw, ok := top["variables"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &vars); err != nil {
			return nil, fmt.Errorf("decode job variables: %w", err)
		}
	}
	ex := newExpander(vars)
	prefix := strings.TrimRight(ex.raw(DependencyProxyVariable), "/")
	if prefix == "" {
		return payload, nil
	}
	changed := false
	if raw, ok := top["image"]; ok {
		img, ok, err := rewriteImage(raw, prefix, ex, false)
		if err != nil {
			return nil, err
		}
		if ok {
			top["image"], changed = img, true
		}
	}
	if raw, ok := top["services"]; ok && !isNull(raw) {
		services, ok, err := rewriteServices(raw, prefix, ex)
		if err != nil {
			return nil, err
		}
		if ok {
			top["services"], changed = services, true
		}
	}
	if !changed {
		return payload, nil
	}
	out, err := marshalJSON(top)
	if err != nil {
		return nil, fmt.Errorf("encode job payload: %w", err)
	}
	return out, nil
}

// rewriteServices rewrites every image object of a services array; it
// reports whether any changed. A value that is not an array is left
// unchanged.
func rewriteServices(raw json.RawMessage, prefix string, ex *expander) (json.RawMessage, bool, error) {
	var services []json.RawMessage
	if err := json.Unmarshal(raw, &services); err != nil {
		return nil, false, nil //nolint:nilerr // not an array: leave it alone
	}
	changed := false
	for i, s := range services {
		out, ok, err := rewriteImage(s, prefix, ex, true)
		if err != nil {
			return nil, false, err
		}
		if ok {
			services[i], changed = out, true
		}
	}
	if !changed {
		return nil, false, nil
	}
	b, err := marshalJSON(services)
	if err != nil {
		return nil, false, fmt.Errorf("encode services: %w", err)
	}
	return b, true, nil
}

// rewriteImage rewrites one image object; it reports whether it changed.
// Non-objects and objects without a string name are left unchanged.
func rewriteImage(raw json.RawMessage, prefix string, ex *expander, service bool) (json.RawMessage, bool, error) {
	if isNull(raw) {
		return nil, false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, false, nil //nolint:nilerr // not an image object: leave it alone
	}
	var name string
	if err := json.Unmarshal(obj["name"], &name); err != nil || name == "" {
		return nil, false, nil //nolint:nilerr // no usable name: leave it alone
	}
	expanded, err := ex.expand(name)
	if err != nil {
		return nil, false, fmt.Errorf("expand image name: %w", err)
	}
	proxied, ok := ProxiedImage(prefix, expanded)
	if !ok {
		return nil, false, nil
	}
	obj["name"] = mustJSON(proxied)
	if service {
		var alias string
		if a, ok := obj["alias"]; ok {
			_ = json.Unmarshal(a, &alias) // a non-string alias counts as absent
		}
		if alias == "" {
			obj["alias"] = mustJSON(ServiceAlias(expanded))
		}
	}
	b, err := marshalJSON(obj)
	if err != nil {
		return nil, false, fmt.Errorf("encode image: %w", err)
	}
	return b, true, nil
}

// ProxiedImage returns the name of image pulled through the dependency
// proxy prefix, and false when image is not on Docker Hub (or empty).
func ProxiedImage(prefix, image string) (string, bool) {
	if image == "" {
		return "", false
	}
	domain, remainder := SplitDockerDomain(image)
	if domain != "docker.io" {
		return "", false
	}
	return prefix + "/" + remainder, true
}

// SplitDockerDomain splits an image reference into registry domain and
// remainder like Docker distribution's splitDockerDomain: the part before
// the first "/" is a domain only if it contains "." or ":", is
// "localhost", or has uppercase letters; index.docker.io is docker.io; a
// single-component Docker Hub name gets "library/".
func SplitDockerDomain(name string) (domain, remainder string) {
	i := strings.IndexRune(name, '/')
	if i == -1 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i]) {
		domain, remainder = "docker.io", name
	} else {
		domain, remainder = name[:i], name[i+1:]
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.ContainsRune(remainder, '/') {
		remainder = "library/" + remainder
	}
	return domain, remainder
}

// ServiceAlias derives a service alias from an image name as the Heptapod
// runner does (the name without its tag, "/" replaced by "-"), but strips a
// digest (@sha256:…) instead of producing "name@sha256" (reference §12
// item 36).
func ServiceAlias(image string) string {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	return strings.ReplaceAll(name, "/", "-")
}

// expander expands $VAR and ${VAR} with job variables like Go's os.Expand,
// recursively on substituted values (except raw variables), unknown = "".
type expander struct {
	vars    map[string]coordinator.Variable
	memo    map[string]string
	active  map[string]bool
	tooLong bool
}

func newExpander(vars []coordinator.Variable) *expander {
	m := make(map[string]coordinator.Variable, len(vars))
	for _, v := range vars {
		m[v.Key] = v // the last definition wins, as in GitLab Runner
	}
	return &expander{vars: m, memo: map[string]string{}, active: map[string]bool{}}
}

// raw returns a variable's value without expansion.
func (e *expander) raw(key string) string { return e.vars[key].Value }

// expand expands s.
func (e *expander) expand(s string) (string, error) {
	out := e.expandString(s)
	if e.tooLong {
		return "", errExpansionTooLarge
	}
	return out, nil
}

func (e *expander) expandString(s string) string {
	if e.tooLong {
		return ""
	}
	out := os.Expand(s, e.lookup)
	if len(out) > maxExpandedLen {
		e.tooLong = true
		return ""
	}
	return out
}

// lookup returns the expanded value of key; a variable referring to itself
// (directly or not) is substituted unexpanded.
func (e *expander) lookup(key string) string {
	v, ok := e.vars[key]
	if !ok {
		return ""
	}
	if v.Raw || e.active[key] {
		return v.Value
	}
	if out, ok := e.memo[key]; ok {
		return out
	}
	e.active[key] = true
	out := e.expandString(v.Value)
	delete(e.active, key)
	e.memo[key] = out
	return out
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// marshalJSON encodes v without HTML escaping (scripts keep their "&&").
func marshalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err //nolint:wrapcheck // callers wrap
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
