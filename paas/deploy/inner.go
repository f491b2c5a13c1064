package deploy

import (
	"maps"
	"strings"

	"gitlab.com/paas-runner/paas-runner/config"
)

// removedKeys are never forwarded to the inner runner, whatever the source
// of the table: image and trace-watch keys (reference §7.2) and the keys
// only paas-runner reads (local executors, naming, inner runner kind).
var removedKeys = []string{
	"heptapod_runner_main_image",
	"paas_job_trace_watch",
	"host",
	"inner_runner",
	"agent_image",
	"resource_name_prefix",
	"local_flavors",
	"local_default_flavor",
	"work_root",
}

// innerTable returns the [[runners]] table forwarded to the inner runner
// (config.Runner.InnerConfig), with real secret values, scrubbed again of
// every key the inner runner must not see.
func innerTable(r *config.Runner) map[string]any {
	table := maps.Clone(r.InnerConfig())
	if table == nil {
		table = map[string]any{}
	}
	for k := range table {
		if strings.HasPrefix(k, "cc_") {
			delete(table, k)
		}
	}
	for _, k := range removedKeys {
		delete(table, k)
	}
	table["executor"] = "docker"
	// The runner token never leaves paas-runner: the job is already
	// acquired and the inner runner authenticates every call with the job
	// token. It gets the runner's non-secret short id instead, which keeps
	// per-runner paths (builds dirs) stable.
	if _, ok := table["token"]; ok {
		table["token"] = r.ShortID()
	}
	revealed, _ := reveal(table).(map[string]any)
	return revealed
}

// reveal returns v with every config.Secret replaced by its value, so that
// the TOML encoder writes real values (Secret marshals as [MASKED]).
func reveal(v any) any {
	switch x := v.(type) {
	case config.Secret:
		return x.Reveal()
	case *config.Secret:
		if x == nil {
			return ""
		}
		return x.Reveal()
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = reveal(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = reveal(e)
		}
		return out
	case []map[string]any:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			out[i], _ = reveal(e).(map[string]any)
		}
		return out
	default:
		return v
	}
}
