package config

import (
	"maps"
	"slices"
	"strings"
)

// SecretExtraKeys lists the paths (under a `[[runners]]` section) of the
// gitlab-runner keys known to hold credentials; Parse wraps their values in
// Extra as Secret. Keys are matched case-insensitively, as gitlab-runner's
// decoder does. Parse also wraps any string whose key contains "token",
// "secret" or "password" or ends in "key", and `environment` entries whose
// variable name does.
var SecretExtraKeys = [][]string{
	{"cache", "s3", "AccessKey"},
	{"cache", "s3", "SecretKey"},
	{"cache", "s3", "SessionToken"},
	{"cache", "gcs", "PrivateKey"},
	{"cache", "azure", "AccountKey"},
}

// notForwarded are the typed Runner keys that stay with paas-runner
// (reference §7.2, plus paas-runner's own keys); every cc_* key is dropped
// too.
var notForwarded = map[string]bool{
	"paas_job_trace_watch":       true,
	"heptapod_runner_main_image": true,
	"host":                       true,
	"inner_runner":               true,
	"agent_image":                true,
	"resource_name_prefix":       true,
	"local_flavors":              true,
	"local_default_flavor":       true,
	"work_root":                  true,
	"executor":                   true,
}

// extraKeys returns the keys of a raw runner table that Runner does not
// declare, deep-copied, with secret-looking values wrapped as Secret.
func extraKeys(rr map[string]any) map[string]any {
	known := runnerKeys
	var extra map[string]any
	for k, v := range rr {
		if known[k] {
			continue
		}
		if extra == nil {
			extra = make(map[string]any)
		}
		extra[k] = maskValue([]string{k}, v)
	}
	return extra
}

// maskValue deep-copies v (found at path) wrapping credentials as Secret.
func maskValue(path []string, v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = maskValue(append(slices.Clip(path), k), e)
		}
		return out
	case []map[string]any:
		out := make([]map[string]any, len(t))
		for i, e := range t {
			out[i], _ = maskValue(path, e).(map[string]any)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			if s, ok := e.(string); ok && len(path) == 1 && strings.EqualFold(path[0], "environment") {
				name, _, _ := strings.Cut(s, "=")
				if secretName(name) {
					out[i] = Secret(s)
					continue
				}
			}
			out[i] = maskValue(path, e)
		}
		return out
	case string:
		if isSecretPath(path) {
			return Secret(t)
		}
		return t
	default:
		return v
	}
}

func isSecretPath(path []string) bool {
	for _, p := range SecretExtraKeys {
		if len(p) == len(path) && equalFoldAll(p, path) {
			return true
		}
	}
	return secretName(path[len(path)-1])
}

func equalFoldAll(a, b []string) bool {
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

// secretName reports whether a key or variable name looks like it holds a
// credential.
func secretName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "token") || strings.Contains(n, "secret") ||
		strings.Contains(n, "password") || strings.HasSuffix(n, "key")
}

// revealValue returns a deep copy of v in which every Secret is replaced by
// its real value (a plain string). Use it only to write the inner runner's
// configuration.
func revealValue(v any) any {
	switch t := v.(type) {
	case Secret:
		return t.Reveal()
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = revealValue(e)
		}
		return out
	case []map[string]any:
		out := make([]map[string]any, len(t))
		for i, e := range t {
			out[i], _ = revealValue(e).(map[string]any)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = revealValue(e)
		}
		return out
	default:
		return v
	}
}

// ForwardedTable returns a deep copy of r.Extra with the REAL secret values:
// the unknown keys of the section ([runners.docker], [runners.cache],
// custom_build_dir, limit, environment, …) as the file had them.
func (r *Runner) ForwardedTable() map[string]any {
	out, _ := revealValue(r.Extra).(map[string]any)
	if out == nil {
		out = make(map[string]any)
	}
	return out
}

// InnerConfig returns the `[[runners]]` table forwarded to the inner runner
// in runner.toml (reference §7.2), secrets revealed: name, url, id, token,
// executor = "docker", heptapod_paas_runner_helper_image,
// paas_keep_resources_for_reuse_seconds and every Extra key. Never included:
// cc_* keys (provisioning credentials must not reach a job's host),
// paas_job_trace_watch, heptapod_runner_main_image, host, inner_runner,
// agent_image, resource_name_prefix, local_flavors, local_default_flavor and
// work_root.
func (r *Runner) InnerConfig() map[string]any {
	t := r.ForwardedTable()
	for k := range t {
		if strings.HasPrefix(k, "cc_") || notForwarded[k] {
			delete(t, k)
		}
	}
	typed := map[string]any{
		"name":                              r.Name,
		"url":                               r.URL,
		"token":                             r.Token.Reveal(),
		"heptapod_paas_runner_helper_image": r.HeptapodPaasRunnerHelperImage,
	}
	for k, v := range typed {
		if v != "" {
			t[k] = v
		}
	}
	if r.ID != 0 {
		t["id"] = r.ID
	}
	if r.PaasKeepResourcesForReuseSeconds != 0 {
		t["paas_keep_resources_for_reuse_seconds"] = float64(r.PaasKeepResourcesForReuseSeconds)
	}
	t["executor"] = "docker"
	return t
}

// Redacted returns a deep copy of c safe to print or serialise in any way:
// typed secrets are already masked by their type, and this copy also
// re-applies secret wrapping to Extra values a caller may have set as plain
// strings.
func (c *Config) Redacted() *Config {
	cp := *c
	cp.notices, cp.warnings = nil, nil
	cp.problems = nil
	if c.QuotaComputation != nil {
		q := *c.QuotaComputation
		cp.QuotaComputation = &q
	}
	cp.Runners = make([]Runner, len(c.Runners))
	for i, r := range c.Runners {
		if r.TraceWatch != nil {
			tw := *r.TraceWatch
			r.TraceWatch = &tw
		}
		r.CCExtraEnv = maps.Clone(r.CCExtraEnv)
		r.LocalFlavors = maps.Clone(r.LocalFlavors)
		if r.Extra != nil {
			r.Extra = make(map[string]any, len(c.Runners[i].Extra))
			for k, v := range c.Runners[i].Extra {
				r.Extra[k] = maskValue([]string{k}, revealValue(v))
			}
		}
		cp.Runners[i] = r
	}
	return &cp
}
