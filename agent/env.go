package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// Version is reported in the job log and CI_RUNNER_VERSION; cmd/paas-runner
// sets it from its build information.
var Version = "dev"

// jobEnv builds the environment of the job's scripts: the agent's own
// environment, then the job variables in payload order (file variables
// written to files under tmpDir, the variable holding the path; non-raw
// values get $VAR expansion), then the runner-side predefined variables.
func jobEnv(job *coordinator.Job, buildsDir, projectDir, tmpDir string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && !strings.HasPrefix(k, "PAAS_RUNNER_") {
			set(k, v)
		}
	}
	predefined := map[string]string{
		"CI_BUILDS_DIR":             buildsDir,
		"CI_PROJECT_DIR":            projectDir,
		"CI_SERVER":                 "yes",
		"CI_RUNNER_VERSION":         Version,
		"CI_RUNNER_EXECUTABLE_ARCH": runtime.GOOS + "/" + runtime.GOARCH,
		"CI_JOB_TIMEOUT":            strconv.Itoa(job.RunnerInfo.Timeout),
	}
	for k, v := range predefined {
		set(k, v)
	}
	lookup := func(k string) string { return vals[k] }
	for _, v := range job.Variables {
		if v.Key == "" || strings.ContainsAny(v.Key, "=\x00") {
			continue
		}
		value := v.Value
		if !v.Raw && !v.File {
			value = os.Expand(value, lookup)
		}
		if v.File {
			path := filepath.Join(tmpDir, v.Key)
			if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
				return nil, fmt.Errorf("write file variable %s: %w", v.Key, err)
			}
			value = path
		}
		set(v.Key, value)
	}
	// The runner's view of its directories wins over job variables.
	set("CI_BUILDS_DIR", buildsDir)
	set("CI_PROJECT_DIR", projectDir)
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, nil
}

// secrets returns the values to mask in the job log: masked variables and
// the job token.
func secrets(job *coordinator.Job) []string {
	out := []string{job.Token.Reveal()}
	for _, v := range job.Variables {
		if v.Masked && v.Value != "" {
			out = append(out, v.Value)
		}
	}
	return out
}
