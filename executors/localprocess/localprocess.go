package localprocess

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// Files of a work directory.
const (
	JobFile      = "job.json"
	ConfigFile   = "runner.toml"
	LogFile      = "agent.log"
	PIDFile      = "pid"
	ExitCodeFile = "exit-code"
	BuildsDir    = "builds"
)

// ErrExists is returned by Provision when the work directory already exists
// (use Adopt).
var ErrExists = errors.New("work directory already exists")

var _ executors.Executor = (*Executor)(nil)

func init() {
	executors.Register(config.ExecutorLocalProcess, func(r *config.Runner, deps executors.Deps) (executors.Executor, error) {
		return New(r, deps, Options{})
	})
}

// Options tune an Executor. The zero value is usable.
type Options struct {
	// Command replaces the argv prefix of the agent (default: the current
	// executable). The child runs Command + ["exec-job", "--config", …].
	Command []string
	// Env is added to the inherited environment of the child.
	Env []string
	// KillGrace is the delay between SIGTERM and SIGKILL on Decommission
	// (default 5s).
	KillGrace time.Duration
}

// Executor runs jobs as local child processes.
type Executor struct {
	runner  *config.Runner
	log     logrus.FieldLogger
	opts    Options
	root    string
	flavors quota.Flavors
	def     string // flavor of jobs that ask for none

	mu       sync.Mutex
	children map[string]chan struct{} // guarded by mu: dir → closed once reaped
}

// New returns the executor of runner r.
func New(r *config.Runner, deps executors.Deps, opts Options) (*Executor, error) {
	log := deps.Logger
	if log == nil {
		log = logrus.New()
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 5 * time.Second
	}
	root := r.WorkRoot
	if root == "" {
		root = config.DefaultWorkRoot
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("runner %q: work_root: %w", r.Label(), err)
	}
	fl, def := executors.StaticFlavors(r)
	return &Executor{
		runner:   r,
		log:      log.WithFields(logrus.Fields{"runner": r.Label(), "executor": config.ExecutorLocalProcess}),
		opts:     opts,
		root:     root,
		flavors:  fl,
		def:      def,
		children: map[string]chan struct{}{},
	}, nil
}

// Kind implements executors.Executor.
func (e *Executor) Kind() string { return config.ExecutorLocalProcess }

// Root returns the work root.
func (e *Executor) Root() string { return e.root }

// Flavors implements executors.Executor (a copy).
func (e *Executor) Flavors(context.Context) (quota.Flavors, error) {
	return maps.Clone(e.flavors), nil
}

// ExpectedWeight implements executors.Executor: 1 without local_flavors,
// else the weight of the flavor the job asks for (CI_CLEVER_CLOUD_FLAVOR,
// default local_default_flavor); an unknown flavor is a *JobError.
func (e *Executor) ExpectedWeight(_ context.Context, job *coordinator.Job) (float64, error) {
	fl, err := executors.SelectFlavor(e.flavors, job, e.def, "")
	if err != nil {
		return 0, err
	}
	return fl.Weight(), nil
}

// MaxWeight implements executors.Executor.
func (e *Executor) MaxWeight(context.Context) (float64, error) {
	return e.flavors.MaxWeight(), nil
}

// resource is one work directory (and its process once launched).
type resource struct {
	name     string
	dir      string
	pid      int
	weight   float64
	launched bool
}

func (r *resource) ID() string           { return r.dir }
func (r *resource) Name() string         { return r.name }
func (r *resource) Weight() float64      { return r.weight }
func (r *resource) Launched() bool       { return r.launched }
func (r *resource) String() string       { return fmt.Sprintf("%s (pid %d)", r.dir, r.pid) }
func (r *resource) file(n string) string { return filepath.Join(r.dir, n) }

func (e *Executor) own(res executors.Resource) (*resource, error) {
	r, ok := res.(*resource)
	if !ok || r == nil {
		return nil, fmt.Errorf("local-process: foreign resource %T", res)
	}
	return r, nil
}

// dirOf returns the work directory of a resource name, refusing names that
// would escape the root.
func (e *Executor) dirOf(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("local-process: invalid resource name %q", name)
	}
	return filepath.Join(e.root, name), nil
}

// Provision implements executors.Executor: it creates the work directory
// (0700) with job.json and runner.toml (0600). When the directory was
// created but a file could not be written, it returns the resource and the
// error.
func (e *Executor) Provision(ctx context.Context, spec executors.JobSpec) (executors.Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	weight, err := e.ExpectedWeight(ctx, spec.Job)
	if err != nil {
		return nil, err
	}
	dir, err := e.dirOf(spec.ResourceName)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.root, 0o700); err != nil {
		return nil, fmt.Errorf("create work root: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("provision %s: %w", spec.ResourceName, ErrExists)
		}
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	res := &resource{name: spec.ResourceName, dir: dir, weight: weight}
	if err := e.writeFiles(res, spec.Job); err != nil {
		return res, err
	}
	e.log.WithFields(logrus.Fields{"resource_id": dir, "job_id": spec.Job.ID, "weight": weight}).Info("work directory created")
	return res, nil
}

func (e *Executor) writeFiles(res *resource, job *coordinator.Job) error {
	if job == nil || len(job.Raw) == 0 {
		return fmt.Errorf("provision %s: job payload missing", res.name)
	}
	if err := writePrivate(res.file(JobFile), job.Raw); err != nil {
		return err
	}
	toml, err := e.runnerTOML(res)
	if err != nil {
		return err
	}
	return writePrivate(res.file(ConfigFile), toml)
}

// runnerTOML is the agent's runner.toml: name, url, builds_dir and the
// forwarded [runners.agent] table. The runner token is NOT written: the
// agent only uses the job token.
func (e *Executor) runnerTOML(res *resource) ([]byte, error) {
	section := map[string]any{
		"name":       e.runner.Label(),
		"url":        e.runner.URL,
		"executor":   "shell",
		"builds_dir": res.file(BuildsDir),
	}
	if a, ok := e.runner.Extra["agent"]; ok {
		section["agent"] = a
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"runners": []any{section}}); err != nil {
		return nil, fmt.Errorf("encode runner.toml: %w", err)
	}
	return buf.Bytes(), nil
}

func writePrivate(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func (e *Executor) command(res *resource) (*exec.Cmd, error) {
	argv := e.opts.Command
	if len(argv) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("locate paas-runner executable: %w", err)
		}
		argv = []string{self}
	}
	args := append(append([]string{}, argv[1:]...),
		"exec-job", "--config", res.file(ConfigFile), "--builds-dir", res.file(BuildsDir), res.file(JobFile))
	cmd := exec.Command(argv[0], args...)
	cmd.Dir = res.dir
	cmd.Env = append(os.Environ(), e.opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// Launch implements executors.Executor: it starts the agent as a child in
// its own process group, output to agent.log, and returns at once. A
// goroutine reaps the child and records its exit status in exit-code; it
// ends with the child. Launching a launched resource is a no-op.
func (e *Executor) Launch(ctx context.Context, res executors.Resource, spec executors.JobSpec) (executors.Resource, error) {
	r, err := e.own(res)
	if err != nil {
		return nil, err
	}
	if r.launched {
		return r, nil
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if _, err := os.Stat(r.file(JobFile)); err != nil {
		if err := e.writeFiles(r, spec.Job); err != nil {
			return r, err
		}
	}
	logf, err := os.OpenFile(r.file(LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return r, fmt.Errorf("open agent log: %w", err)
	}
	cmd, err := e.command(r)
	if err != nil {
		logf.Close()
		return r, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return r, fmt.Errorf("start agent: %w", err)
	}
	logf.Close()
	launched := &resource{name: r.name, dir: r.dir, pid: cmd.Process.Pid, weight: r.weight, launched: true}
	if err := writePrivate(r.file(PIDFile), []byte(strconv.Itoa(launched.pid)+"\n")); err != nil {
		e.log.WithError(err).Warn("could not record the agent's pid")
	}
	log := e.log.WithFields(logrus.Fields{"resource_id": r.dir, "pid": launched.pid})
	reaped := make(chan struct{})
	e.mu.Lock()
	e.children[r.dir] = reaped
	e.mu.Unlock()
	go func() {
		defer func() {
			e.mu.Lock()
			delete(e.children, r.dir)
			e.mu.Unlock()
			close(reaped)
		}()
		err := cmd.Wait()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			code = -1
		}
		// The directory may be gone already (decommissioned).
		if werr := os.WriteFile(launched.file(ExitCodeFile), []byte(strconv.Itoa(code)+"\n"), 0o600); werr == nil {
			log.WithField("exit_code", code).Info("agent exited")
		}
	}()
	log.Info("agent started")
	return launched, nil
}

// alive reports whether pid is a live (non-zombie) process running for dir.
func alive(pid int, dir string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && (strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")) {
			return false
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !os.IsNotExist(err) // no /proc: trust kill(0)
	}
	return bytes.Contains(cmdline, []byte(dir+string(filepath.Separator)))
}

// Check implements executors.Executor.
func (e *Executor) Check(ctx context.Context, res executors.Resource) (executors.Status, error) {
	r, err := e.own(res)
	if err != nil {
		return executors.Status{}, err
	}
	if err := ctx.Err(); err != nil {
		return executors.Status{}, err
	}
	if _, err := os.Stat(r.dir); errors.Is(err, os.ErrNotExist) {
		return executors.Status{Liveness: executors.Gone}, nil
	}
	if b, err := os.ReadFile(r.file(ExitCodeFile)); err == nil {
		code, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return executors.Status{Liveness: executors.Exited, ExitCode: code}, nil
	}
	if !r.launched {
		return executors.Status{Liveness: executors.LivenessUnknown}, nil
	}
	e.mu.Lock()
	_, reaping := e.children[r.dir]
	e.mu.Unlock()
	if reaping || alive(r.pid, r.dir) {
		return executors.Status{Liveness: executors.Alive}, nil
	}
	// Dead without a recorded status and not our child: the daemon
	// restarted while the agent ran.
	if b, err := os.ReadFile(r.file(ExitCodeFile)); err == nil {
		code, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return executors.Status{Liveness: executors.Exited, ExitCode: code}, nil
	}
	return executors.Status{Liveness: executors.Exited, ExitCode: -1}, nil
}

// Decommission implements executors.Executor: it kills the process group
// (SIGTERM, then SIGKILL after the grace delay) and removes the work
// directory. A resource already gone is a success.
func (e *Executor) Decommission(ctx context.Context, res executors.Resource) error {
	r, err := e.own(res)
	if err != nil {
		return err
	}
	pid := r.pid
	if pid == 0 {
		if b, err := os.ReadFile(r.file(PIDFile)); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if alive(pid, r.dir) {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		if !e.waitDead(ctx, pid, r.dir) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	// Let our reaper record the exit status before the directory goes.
	e.mu.Lock()
	reaped, ours := e.children[r.dir]
	e.mu.Unlock()
	if ours {
		tm := time.NewTimer(e.opts.KillGrace)
		select {
		case <-reaped:
		case <-ctx.Done():
		case <-tm.C:
		}
		tm.Stop()
	}
	if err := os.RemoveAll(r.dir); err != nil {
		// A last write may have raced with the removal: once more.
		if err := os.RemoveAll(r.dir); err != nil {
			return fmt.Errorf("remove work directory %s: %w", r.name, err)
		}
	}
	e.log.WithField("resource_id", r.dir).Info("work directory removed")
	return nil
}

// waitDead polls until pid is dead or the grace delay (or ctx) ends.
func (e *Executor) waitDead(ctx context.Context, pid int, dir string) bool {
	grace := time.NewTimer(e.opts.KillGrace)
	defer grace.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !alive(pid, dir) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-grace.C:
			return false
		case <-tick.C:
		}
	}
}

// dump is the state-file form of a resource.
type dump struct {
	Name     string  `json:"name"`
	Dir      string  `json:"dir"`
	PID      int     `json:"pid,omitempty"`
	Weight   float64 `json:"weight"`
	Launched bool    `json:"launched"`
}

// Dump implements executors.Executor.
func (e *Executor) Dump(res executors.Resource) (json.RawMessage, error) {
	r, err := e.own(res)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(dump{Name: r.name, Dir: r.dir, PID: r.pid, Weight: r.weight, Launched: r.launched})
	if err != nil {
		return nil, fmt.Errorf("dump resource: %w", err)
	}
	return b, nil
}

// Restore implements executors.Executor.
func (e *Executor) Restore(_ context.Context, raw json.RawMessage) (executors.Resource, error) {
	var d dump
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("restore local-process resource: %w", err)
	}
	if d.Name == "" || d.Dir == "" {
		return nil, fmt.Errorf("restore local-process resource: name or dir missing")
	}
	return &resource{name: d.Name, dir: d.Dir, pid: d.PID, weight: d.Weight, launched: d.Launched}, nil
}

// Adopt implements executors.Executor: the work directory of name, if it
// exists (launched when it has a pid file).
func (e *Executor) Adopt(ctx context.Context, name string, job *coordinator.Job) (executors.Resource, error) {
	dir, err := e.dirOf(name)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("adopt %s: %w", name, err)
	}
	weight := 1.0
	if job != nil {
		if w, err := e.ExpectedWeight(ctx, job); err == nil {
			weight = w
		}
	}
	r := &resource{name: name, dir: dir, weight: weight}
	if b, err := os.ReadFile(r.file(PIDFile)); err == nil {
		r.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		r.launched = r.pid > 0
	}
	return r, nil
}

// List implements executors.Executor: the work directories whose name
// starts with the runner's resource prefix.
func (e *Executor) List(ctx context.Context) ([]executors.Listed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(e.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list work root: %w", err)
	}
	prefix := executors.ResourcePrefix(e.runner)
	var out []executors.Listed
	for _, en := range entries {
		if en.IsDir() && strings.HasPrefix(en.Name(), prefix) {
			out = append(out, executors.Listed{ID: filepath.Join(e.root, en.Name()), Name: en.Name()})
		}
	}
	return out, nil
}
