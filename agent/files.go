package agent

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// Settings is the optional `[runners.agent]` table of runner.toml (forwarded
// from the [[runners]] section of the daemon's configuration).
type Settings struct {
	TraceInterval      config.Seconds `toml:"trace_interval"`
	KeepAliveInterval  config.Seconds `toml:"keep_alive_interval"`
	AfterScriptTimeout config.Seconds `toml:"after_script_timeout"`
	KillGrace          config.Seconds `toml:"kill_grace"`
	HTTPTimeout        config.Seconds `toml:"http_timeout"`
	Shell              string         `toml:"shell"`
}

// RunnerConfig is what the agent reads from runner.toml: the first
// [[runners]] section's url, builds_dir and [runners.agent]. Every other key
// is ignored (the file may hold a full Heptapod-style runner section).
type RunnerConfig struct {
	Runners []struct {
		Name      string   `toml:"name"`
		URL       string   `toml:"url"`
		BuildsDir string   `toml:"builds_dir"`
		Agent     Settings `toml:"agent"`
	} `toml:"runners"`
}

// LoadRunnerConfig reads runner.toml.
func LoadRunnerConfig(path string) (*RunnerConfig, error) {
	var rc RunnerConfig
	if _, err := toml.DecodeFile(path, &rc); err != nil {
		return nil, fmt.Errorf("read runner config %s: %w", path, err)
	}
	if len(rc.Runners) == 0 || rc.Runners[0].URL == "" {
		return nil, fmt.Errorf("read runner config %s: no [[runners]] section with a url", path)
	}
	return &rc, nil
}

// Apply fills the options that are still zero from the configuration.
func (rc *RunnerConfig) Apply(o *Options) {
	r := rc.Runners[0]
	if o.CoordinatorURL == "" {
		o.CoordinatorURL = r.URL
	}
	if o.BuildsDir == "" {
		o.BuildsDir = r.BuildsDir
	}
	set := func(d *time.Duration, s config.Seconds) {
		if *d <= 0 && s > 0 {
			*d = s.Duration()
		}
	}
	set(&o.TraceInterval, r.Agent.TraceInterval)
	set(&o.KeepAliveInterval, r.Agent.KeepAliveInterval)
	set(&o.AfterScriptTimeout, r.Agent.AfterScriptTimeout)
	set(&o.KillGrace, r.Agent.KillGrace)
	set(&o.HTTPTimeout, r.Agent.HTTPTimeout)
	if o.Shell == "" {
		o.Shell = r.Agent.Shell
	}
}

// LoadJob reads a job payload file (job.json).
func LoadJob(path string) (*coordinator.Job, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job payload: %w", err)
	}
	job, err := coordinator.ParseJob(raw)
	if err != nil {
		return nil, fmt.Errorf("read job payload %s: %w", path, err)
	}
	return job, nil
}

// RunFiles is `paas-runner exec-job --config configPath jobPath`: it loads
// both files, completes o with them (explicit fields of o win) and runs
// the job.
func RunFiles(ctx context.Context, configPath, jobPath string, o Options) (Result, error) {
	rc, err := LoadRunnerConfig(configPath)
	if err != nil {
		return Result{}, err
	}
	job, err := LoadJob(jobPath)
	if err != nil {
		return Result{}, err
	}
	rc.Apply(&o)
	o.Job = job
	return Run(ctx, o)
}

// ExitCode is the exit status of `paas-runner exec-job` for a Run outcome:
// 0 when the job succeeded, 1 when it failed or was canceled (and that was
// reported), 2 when the agent could not run it or report it.
func ExitCode(res Result, err error) int {
	switch {
	case err != nil:
		return 2
	case res.State == "success":
		return 0
	default:
		return 1
	}
}

// SelfBinary returns the path of the running paas-runner executable, to be
// placed in a job image as the agent. Release binaries are built with
// CGO_ENABLED=0 (make build), so they are static and run in any Linux image.
func SelfBinary() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate own executable: %w", err)
	}
	return p, nil
}

// Main is `exec-job` without the CLI framework, for test binaries that act
// as paas-runner (args are what follows "exec-job"): --config FILE,
// optional --builds-dir DIR, then the job payload file. It returns the exit
// status (see ExitCode).
func Main(ctx context.Context, args []string, o Options) int {
	fs := flag.NewFlagSet("exec-job", flag.ContinueOnError)
	configPath := fs.String("config", "", "runner.toml")
	buildsDir := fs.String("builds-dir", "", "CI_BUILDS_DIR")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *configPath == "" {
		fmt.Fprintln(os.Stderr, "usage: exec-job --config runner.toml [--builds-dir DIR] job.json")
		return 2
	}
	if o.BuildsDir == "" {
		o.BuildsDir = *buildsDir
	}
	res, err := RunFiles(ctx, *configPath, fs.Arg(0), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "exec-job:", err)
	}
	return ExitCode(res, err)
}
