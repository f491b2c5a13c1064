package config

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ignoredGlobalKeys are gitlab-runner global keys that a file produced by
// `gitlab-runner register` (or kept from a gitlab-runner setup) may hold and
// that paas-runner accepts without using them.
var ignoredGlobalKeys = []string{
	"sentry_dsn", "connection_max_age", "user", "labels",
	"session_server", "machine", "experimental",
}

// heptapodREADMEKeys are global keys documented by the Heptapod PAAS Runner
// README (reference §2.6) that its code never read, mapped to the key that
// does the job. Files holding them worked (the keys were ignored) and must
// keep working, so they are warnings, not errors.
var heptapodREADMEKeys = map[string]string{
	"job_progress_interval":              "job_progress_poll_interval",
	"pass_decommision_launched_failures": "paas_decommission_launch_failures",
	"job_trace_watch":                    "[runners.paas_job_trace_watch]",
	"concurrency":                        "concurrent",
}

// Load reads and decodes the configuration file at path; see Parse. It does
// not validate: call Validate (or use LoadAndValidate).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return cfg, nil
}

// LoadAndValidate is Load followed by Validate: what the daemon uses. A
// validation failure is a *ValidationError listing every problem.
func LoadAndValidate(path string) (*Config, error) {
	cfg, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes a TOML configuration on top of Default(); each `[[runners]]`
// section is decoded on top of DefaultRunner(), a present
// `[runners.paas_job_trace_watch]` on top of DefaultTraceWatch(). It then
// derives the defaults that depend on other keys (cc_flavor_name_prefix,
// local-docker host), keeps every unknown per-runner key verbatim in
// Runner.Extra (secret-looking values wrapped as Secret) and records unknown
// global keys, which Validate reports. Parse only fails on TOML syntax errors
// and type mismatches.
func Parse(data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, fmt.Errorf("parse toml: %w", err)
	}
	rawRunners, err := runnerTables(raw["runners"])
	if err != nil {
		return nil, err
	}
	cfg := Default()
	cfg.Runners = make([]Runner, len(rawRunners))
	for i, rr := range rawRunners {
		cfg.Runners[i] = DefaultRunner()
		if _, ok := rr["paas_job_trace_watch"]; ok {
			cfg.Runners[i].TraceWatch = DefaultTraceWatch()
		}
	}
	// Decoding into the pre-sized slice keeps the runner defaults: the
	// decoder reuses existing elements and only sets keys present in the file.
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	cfg.applyDerivedDefaults(raw, rawRunners)
	cfg.collectUnknownKeys(md, rawRunners)
	for i, rr := range rawRunners {
		cfg.Runners[i].Extra = extraKeys(rr)
		if len(cfg.Runners[i].Extra) > 0 {
			cfg.notices = append(cfg.notices, fmt.Sprintf("runners[%d]: keys forwarded to the inner runner: %s",
				i, strings.Join(sortedKeys(cfg.Runners[i].Extra), ", ")))
		}
	}
	return cfg, nil
}

// Notices returns remarks gathered while parsing that are not errors: keys
// forwarded to the inner runner, gitlab-runner keys that are ignored,
// defaults substituted for gitlab-runner's "0 means default" values. The
// daemon logs them at debug level.
func (c *Config) Notices() []string { return slices.Clone(c.notices) }

// Warnings returns problems of the file that do not prevent running but
// probably do not do what the author meant (keys the Heptapod runner
// documented but ignored). The daemon logs them at warning level and
// `config check` prints them.
func (c *Config) Warnings() []string { return slices.Clone(c.warnings) }

// RunnerByName returns the first runner called name (as the Heptapod runner
// resolves quota_computation.reference_runner), or nil.
func (c *Config) RunnerByName(name string) *Runner {
	for i := range c.Runners {
		if c.Runners[i].Name == name {
			return &c.Runners[i]
		}
	}
	return nil
}

// runnerTables returns the `[[runners]]` tables of a generic decode.
func runnerTables(v any) ([]map[string]any, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case []map[string]any:
		return t, nil
	case []any:
		out := make([]map[string]any, 0, len(t))
		for i, e := range t {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("decode config: runners[%d]: must be a table", i)
			}
			out = append(out, m)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("decode config: runners: must be an array of tables ([[runners]])")
	}
}

func (c *Config) applyDerivedDefaults(raw map[string]any, rawRunners []map[string]any) {
	// gitlab-runner treats 0 as "use the default" for these two, and its
	// `register` command writes them as 0.
	if v, ok := raw["check_interval"]; ok && isZeroNumber(v) {
		c.CheckInterval = DefaultCheckInterval
		c.notices = append(c.notices, fmt.Sprintf("check_interval: 0 means the default, %d", DefaultCheckInterval))
	}
	if v, ok := raw["shutdown_timeout"]; ok && isZeroNumber(v) {
		c.ShutdownTimeout = DefaultShutdownTimeout
		c.notices = append(c.notices, fmt.Sprintf("shutdown_timeout: 0 means the default, %d", DefaultShutdownTimeout))
	}
	if c.ListenAddress != "" && !strings.Contains(c.ListenAddress, ":") {
		c.ListenAddress = net.JoinHostPort(c.ListenAddress, DefaultListenPort)
	}
	for i, rr := range rawRunners {
		r := &c.Runners[i]
		if _, ok := rr["cc_flavor_name_prefix"]; !ok {
			r.CCFlavorNamePrefix = r.CCFlavorContext + "-"
		}
		if r.Executor == ExecutorLocalDocker && r.Host == "" {
			r.Host = os.Getenv("DOCKER_HOST")
			if r.Host == "" {
				r.Host = DefaultLocalDockerHost
			}
		}
	}
}

func isZeroNumber(v any) bool {
	switch n := v.(type) {
	case int64:
		return n == 0
	case float64:
		return n == 0
	}
	return false
}

// collectUnknownKeys records every undecoded key that is not a forwarded
// per-runner key: unknown global keys, and unknown keys inside tables that
// paas-runner owns (quota_computation, paas_job_trace_watch, local_flavors).
func (c *Config) collectUnknownKeys(md toml.MetaData, rawRunners []map[string]any) {
	known := runnerKeys
	var reported reportedPaths
	for _, key := range md.Undecoded() {
		if len(key) == 0 {
			continue
		}
		if key[0] == "runners" {
			if len(key) < 3 || !known[key[1]] {
				continue // forwarded verbatim through Extra
			}
			c.unknownRunnerKey(key[1:], rawRunners, &reported)
			continue
		}
		path := strings.Join(key, ".")
		if reported.covers(path) {
			continue
		}
		reported = append(reported, path)
		if use, ok := heptapodREADMEKeys[key[0]]; ok {
			c.warnings = append(c.warnings, fmt.Sprintf("%s: ignored (a key of the Heptapod README that the Heptapod runner never read); use %s", key[0], use))
			reported = append(reported, key[0])
			continue
		}
		if slices.Contains(ignoredGlobalKeys, key[0]) {
			c.notices = append(c.notices, path+": gitlab-runner key ignored by paas-runner")
			continue
		}
		c.problems = append(c.problems, Problem{Path: path, Message: "unknown key"})
	}
}

// reportedPaths holds the key paths already reported; a path under one of
// them is not reported again.
type reportedPaths []string

func (r reportedPaths) covers(path string) bool {
	for _, p := range r {
		if path == p || strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}

// unknownRunnerKey reports sub, an unknown key path inside a known key of
// [[runners]], in every runner section that has it.
func (c *Config) unknownRunnerKey(sub []string, rawRunners []map[string]any, reported *reportedPaths) {
	for i, rr := range rawRunners {
		if !hasPath(rr, sub) {
			continue
		}
		path := fmt.Sprintf("runners[%d].%s", i, strings.Join(sub, "."))
		if !reported.covers(path) {
			*reported = append(*reported, path)
			c.problems = append(c.problems, Problem{Path: path, Message: "unknown key"})
		}
	}
}

func hasPath(m map[string]any, path []string) bool {
	var cur any = m
	for _, k := range path {
		t, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = t[k]; !ok {
			return false
		}
	}
	return true
}

// runnerKeys is the set of TOML keys of Runner (read-only).
var runnerKeys = tomlKeys(reflect.TypeFor[Runner]())

func tomlKeys(t reflect.Type) map[string]bool {
	keys := make(map[string]bool, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
