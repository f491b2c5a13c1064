package deploy

import (
	"maps"
	"math"
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

// innerConfigurer is implemented by config.Runner once the config package
// provides the forwarded table itself.
type innerConfigurer interface {
	InnerConfig() map[string]any
}

// innerTable returns the [[runners]] table forwarded to the inner runner,
// with real secret values, scrubbed of every key the inner runner must not
// see whatever its source.
func innerTable(r *config.Runner) map[string]any {
	var table map[string]any
	if ic, ok := any(r).(innerConfigurer); ok {
		table = maps.Clone(ic.InnerConfig())
	}
	if table == nil {
		table = ownInnerTable(r)
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
	revealed, _ := reveal(table).(map[string]any)
	return revealed
}

// ownInnerTable builds the forwarded table from the typed fields and Extra
// (used while config has no InnerConfig).
func ownInnerTable(r *config.Runner) map[string]any {
	t := make(map[string]any, len(r.Extra)+8)
	for k, v := range r.Extra {
		t[k] = v
	}
	if r.Name != "" {
		t["name"] = r.Name
	}
	if r.URL != "" {
		t["url"] = r.URL
	}
	if r.ID != 0 {
		t["id"] = r.ID
	}
	if !r.Token.IsZero() {
		t["token"] = r.Token.Reveal()
	}
	if r.HeptapodPaasRunnerHelperImage != "" {
		t["heptapod_paas_runner_helper_image"] = r.HeptapodPaasRunnerHelperImage
	}
	if r.PaasKeepResourcesForReuseSeconds != 0 {
		secs := float64(r.PaasKeepResourcesForReuseSeconds)
		if secs == math.Trunc(secs) {
			t["paas_keep_resources_for_reuse_seconds"] = int64(secs)
		} else {
			t["paas_keep_resources_for_reuse_seconds"] = secs
		}
	}
	return t
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
