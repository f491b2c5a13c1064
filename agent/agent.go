package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// runnerInterrupted is reported when the agent is stopped mid-job.
const runnerInterrupted coordinator.FailureReason = "runner_interrupted"

// ErrNoJob is returned by Run when Options.Job is nil.
var ErrNoJob = errors.New("no job to run")

// ansi colours of the job log, as GitLab Runner writes them.
const (
	ansiBoldGreen  = "\x1b[32;1m"
	ansiBoldRed    = "\x1b[31;1m"
	ansiBoldYellow = "\x1b[0;33m"
	ansiReset      = "\x1b[0;m"
)

// lockedWriter serialises writes to the masker.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Run executes the job: checkout, script, after_script, while streaming the
// log; then reports the final state. It returns once the coordinator has
// the final state (or gave up on it). The error is non-nil only when the
// final state could not be reported (or the options are unusable); a job
// whose script fails is a nil error with Result.State "failed".
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Job == nil {
		return Result{}, ErrNoJob
	}
	o.setDefaults()
	job := o.Job
	log := o.Logger.WithField("job_id", job.ID)
	// One attempt per call: the agent retries itself, keeping its bytes.
	api := coordinator.New(o.CoordinatorURL, "", coordinator.Options{
		Logger: log, Timeout: o.HTTPTimeout, Observer: o.Observer, RetryMax: -1,
		Version: Version, Executor: "paas-runner-agent",
	})
	return run(ctx, &o, job, api, log)
}

func run(ctx context.Context, o *Options, job *coordinator.Job, api jobAPI, log logrus.FieldLogger) (Result, error) {
	ctl := newJobControl()
	trace := newTraceBuffer(api, job, ctl, log, o)
	masker := NewMasker(trace, secrets(job))
	out := &lockedWriter{w: masker}

	// Tell the coordinator we run it (two-phase accept, and early cancel
	// discovery). A failure here is not fatal: the PATCHes will tell.
	if status, _, err := api.UpdateJob(ctx, job.ID, job.Token, "running", "", 0, "", 0); err != nil && !errors.Is(err, coordinator.ErrJobNotProcessing) {
		log.WithError(err).Warn("initial running update failed")
	} else {
		ctl.status(status, err != nil)
	}
	if isClosed(ctl.aborted) {
		log.Info("the coordinator no longer runs this job; nothing to do")
		return Result{Canceled: true}, nil
	}

	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		trace.run(sendCtx)
	}()

	res := execute(ctx, o, job, out, ctl, log)

	_ = masker.Close()
	stopSending()
	<-sendDone
	if isClosed(ctl.aborted) {
		log.Info("job aborted by the coordinator; not reporting a final state")
		res.State, res.FailureReason, res.Canceled = "", "", true
		return res, nil
	}
	finalCtx := context.WithoutCancel(ctx)
	size, checksum := trace.flush(finalCtx)
	res.TraceBytes = size
	err := finalUpdate(finalCtx, o, job, api, res, size, checksum, log)
	return res, err
}

// execute runs the job's stages and writes the closing line of the log.
func execute(ctx context.Context, o *Options, job *coordinator.Job, out io.Writer, ctl *jobControl, log logrus.FieldLogger) Result {
	fmt.Fprintf(out, "%sRunning with paas-runner agent %s%s\n", ansiBoldGreen, Version, ansiReset)
	fmt.Fprintf(out, "  on %s job %d (%s)\n", hostname(), job.ID, job.JobInfo.Name)

	jobCtx := ctx
	if t := job.RunnerInfo.Timeout; t > 0 {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	res := stages(ctx, jobCtx, o, job, out, ctl, log)
	switch {
	case isClosed(ctl.aborted):
	case res.State == "success":
		fmt.Fprintf(out, "%sJob succeeded%s\n", ansiBoldGreen, ansiReset)
	case res.Canceled:
		fmt.Fprintf(out, "%sERROR: Job failed: canceled%s\n", ansiBoldRed, ansiReset)
	case res.FailureReason == coordinator.JobExecutionTimeout:
		fmt.Fprintf(out, "%sERROR: Job failed: execution took longer than %s seconds%s\n", ansiBoldRed, fmt.Sprint(job.RunnerInfo.Timeout), ansiReset)
	case res.FailureReason == coordinator.ScriptFailure:
		fmt.Fprintf(out, "%sERROR: Job failed: exit code %d%s\n", ansiBoldRed, res.ExitCode, ansiReset)
	}
	return res
}

func warn(out io.Writer, format string, args ...any) {
	fmt.Fprintf(out, "%sWARNING: %s%s\n", ansiBoldYellow, fmt.Sprintf(format, args...), ansiReset)
}

func systemFailure(out io.Writer, log logrus.FieldLogger, err error) Result {
	log.WithError(err).Error("job preparation failed")
	fmt.Fprintf(out, "%sERROR: Job failed (system failure): %v%s\n", ansiBoldRed, err, ansiReset)
	return Result{State: "failed", FailureReason: coordinator.RunnerSystemFailure}
}

// jobRun holds what the stages of one job share.
type jobRun struct {
	o      *Options
	job    *coordinator.Job
	out    io.Writer
	ctl    *jobControl
	log    logrus.FieldLogger
	shell  string
	dir    string // CI_PROJECT_DIR
	tmpDir string // scripts and file variables
	env    []string
}

// stages runs preparation, checkout, steps and after_script. jobCtx carries
// the job timeout; ctx does not (after_script has its own).
func stages(ctx, jobCtx context.Context, o *Options, job *coordinator.Job, out io.Writer, ctl *jobControl, log logrus.FieldLogger) Result {
	if res, stop := unsupported(o, job, out); stop {
		return res
	}
	jr := &jobRun{o: o, job: job, out: out, ctl: ctl, log: log}
	if err := jr.prepare(); err != nil {
		return systemFailure(out, log, err)
	}
	defer os.RemoveAll(jr.tmpDir)

	hooks := jobHooks(job)
	if res, ok := jr.hook(ctx, jobCtx, "pre_get_sources_script", hooks, o.BuildsDir); !ok {
		return res
	}
	fmt.Fprintf(out, "\n%sGetting source from Git repository%s\n", ansiBoldGreen, ansiReset)
	if err := checkoutCancelable(jobCtx, job, jr.dir, out, ctl); err != nil {
		switch {
		case isClosed(ctl.canceling):
			return Result{State: "failed", FailureReason: coordinator.ScriptFailure, Canceled: true}
		case ctx.Err() != nil:
			return Result{State: "failed", FailureReason: runnerInterrupted}
		case jobCtx.Err() != nil:
			return Result{State: "failed", FailureReason: coordinator.JobExecutionTimeout}
		}
		return systemFailure(out, log, err)
	}
	if res, ok := jr.hook(ctx, jobCtx, "post_get_sources_script", hooks, jr.dir); !ok {
		return res
	}
	res := jr.steps(ctx, jobCtx)
	if isClosed(ctl.aborted) {
		return res
	}
	for i := range job.Steps {
		if step := &job.Steps[i]; step.Name == "after_script" && len(step.Script) > 0 {
			jr.afterScript(ctx, step)
		}
	}
	return res
}

// prepare finds the shell, creates the temporary dir and builds the
// environment.
func (jr *jobRun) prepare() error {
	shell, err := findShell(jr.o.Shell)
	if err != nil {
		return err
	}
	jr.shell = shell
	jr.dir = filepath.Join(jr.o.BuildsDir, projectPath(jr.job))
	jr.tmpDir = jr.dir + ".tmp"
	if err := os.RemoveAll(jr.tmpDir); err != nil {
		return fmt.Errorf("clean temporary dir: %w", err)
	}
	if err := os.MkdirAll(jr.tmpDir, 0o700); err != nil {
		return fmt.Errorf("create temporary dir: %w", err)
	}
	jr.env, err = jobEnv(jr.job, jr.o.BuildsDir, jr.dir, jr.tmpDir)
	return err
}

func (jr *jobRun) step(name string, lines []string, stop <-chan struct{}, timeout time.Duration) *stepRun {
	return &stepRun{shell: jr.shell, dir: jr.dir, tmpDir: jr.tmpDir, env: jr.env, out: jr.out, grace: jr.o.KillGrace, stop: stop, name: name, lines: lines, timeout: timeout}
}

// jobHooks reads the payload's hooks (pre_get_sources_script,
// post_get_sources_script), which coordinator.Job does not type.
func jobHooks(job *coordinator.Job) map[string][]string {
	var p struct {
		Hooks []struct {
			Name   string   `json:"name"`
			Script []string `json:"script"`
		} `json:"hooks"`
	}
	if len(job.Raw) == 0 || json.Unmarshal(job.Raw, &p) != nil {
		return nil
	}
	out := map[string][]string{}
	for _, h := range p.Hooks {
		out[h.Name] = append(out[h.Name], h.Script...)
	}
	return out
}

// hook runs one get-sources hook in dir; ok is false when the job must end
// with res.
func (jr *jobRun) hook(ctx, jobCtx context.Context, name string, hooks map[string][]string, dir string) (res Result, ok bool) {
	lines := hooks[name]
	if len(lines) == 0 {
		return Result{}, true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return systemFailure(jr.out, jr.log, fmt.Errorf("create %s: %w", dir, err)), false
	}
	fmt.Fprintf(jr.out, "\n%sExecuting \"%s\"%s\n", ansiBoldGreen, name, ansiReset)
	run := jr.step(name, lines, jr.ctl.canceling, 0)
	run.dir = dir
	outcome, code, err := run.run(jobCtx)
	return jr.verdict(ctx, name, outcome, code, err, false)
}

// verdict maps a step's outcome to the job's result; ok is true when the
// job goes on (success, or a failure allowed by allowFailure).
func (jr *jobRun) verdict(ctx context.Context, name string, outcome stepOutcome, code int, err error, allowFailure bool) (Result, bool) {
	switch {
	case err != nil:
		return systemFailure(jr.out, jr.log, err), false
	case outcome == stepStopped:
		return Result{State: "failed", FailureReason: coordinator.ScriptFailure, Canceled: true}, false
	case outcome == stepTimedOut && ctx.Err() != nil:
		// The agent itself was stopped (SIGTERM), not the job timeout.
		fmt.Fprintf(jr.out, "%sERROR: the job was interrupted: the agent is shutting down%s\n", ansiBoldRed, ansiReset)
		return Result{State: "failed", FailureReason: runnerInterrupted}, false
	case outcome == stepTimedOut:
		return Result{State: "failed", FailureReason: coordinator.JobExecutionTimeout}, false
	case outcome == stepFailed && allowFailure:
		warn(jr.out, "%s failed with exit code %d (allowed to fail)", name, code)
		return Result{}, true
	case outcome == stepFailed:
		return Result{State: "failed", FailureReason: coordinator.ScriptFailure, ExitCode: code}, false
	}
	return Result{}, true
}

// steps runs every step but after_script, in payload order, honouring
// `when`; the first failure decides the job's result.
func (jr *jobRun) steps(ctx, jobCtx context.Context) Result {
	res := Result{State: "success"}
	failed := false
	for i := range jr.job.Steps {
		step := &jr.job.Steps[i]
		if step.Name == "after_script" || !shouldRun(step.When, failed) || len(step.Script) == 0 {
			continue
		}
		fmt.Fprintf(jr.out, "\n%sExecuting \"step_%s\" stage of the job script%s\n", ansiBoldGreen, step.Name, ansiReset)
		outcome, code, err := jr.step(step.Name, step.Script, jr.ctl.canceling, 0).run(jobCtx)
		r, ok := jr.verdict(ctx, "step "+step.Name, outcome, code, err, step.AllowFailure)
		switch {
		case ok:
		case r.FailureReason == coordinator.ScriptFailure && !r.Canceled:
			// A failing script: later on_failure/always steps still run.
			res, failed = r, true
		default:
			return r
		}
	}
	return res
}

// afterScript runs after_script with its own timeout; its outcome never
// changes the job's.
func (jr *jobRun) afterScript(ctx context.Context, step *coordinator.Step) {
	timeout := jr.o.AfterScriptTimeout
	if v, ok := jr.job.Variable("RUNNER_AFTER_SCRIPT_TIMEOUT"); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil && d > 0 {
			timeout = d
		}
	}
	fmt.Fprintf(jr.out, "\n%sRunning after_script%s\n", ansiBoldGreen, ansiReset)
	outcome, code, err := jr.step("after_script", step.Script, jr.ctl.aborted, timeout).run(ctx)
	switch {
	case err != nil:
		warn(jr.out, "after_script could not run: %v", err)
	case outcome == stepTimedOut:
		warn(jr.out, "after_script timed out after %s", timeout)
	case outcome == stepFailed:
		warn(jr.out, "after_script failed with exit code %d", code)
	}
}

// checkoutCancelable runs the checkout under jobCtx, also canceled when the
// coordinator cancels the job.
func checkoutCancelable(jobCtx context.Context, job *coordinator.Job, projectDir string, out io.Writer, ctl *jobControl) error {
	ctx, cancel := context.WithCancel(jobCtx)
	defer cancel()
	go func() {
		select {
		case <-ctl.canceling:
			cancel()
		case <-ctx.Done():
		}
	}()
	return checkout(ctx, job, projectDir, out)
}

func shouldRun(when string, failed bool) bool {
	switch when {
	case "always":
		return true
	case "on_failure":
		return failed
	default:
		return !failed
	}
}

// unsupported writes a line for every feature the agent does not provide.
// Services make the job fail (runner_unsupported) only when no Docker
// daemon is reachable (the script cannot start them itself).
func unsupported(o *Options, job *coordinator.Job, out io.Writer) (Result, bool) {
	if len(job.Services) > 0 {
		names := make([]string, 0, len(job.Services))
		for _, s := range job.Services {
			names = append(names, s.Name)
		}
		if !o.DockerAvailable() {
			fmt.Fprintf(out, "%sERROR: this job needs services (%s), which the paas-runner agent does not start, and no Docker daemon is reachable%s\n", ansiBoldRed, strings.Join(names, ", "), ansiReset)
			return Result{State: "failed", FailureReason: coordinator.RunnerUnsupported}, true
		}
		warn(out, "services are not started by the paas-runner agent and are ignored: %s", strings.Join(names, ", "))
	}
	if hasEntries(job.Artifacts) {
		warn(out, "artifacts are not uploaded by the paas-runner agent; this job's artifacts are ignored")
	}
	if hasEntries(job.Cache) {
		warn(out, "cache is not supported by the paas-runner agent; this job's cache is ignored")
	}
	return Result{}, false
}

func hasEntries(raw json.RawMessage) bool {
	var v []json.RawMessage
	return len(raw) > 0 && json.Unmarshal(raw, &v) == nil && len(v) > 0
}

// projectPath is the project's directory under the builds dir.
func projectPath(job *coordinator.Job) string {
	p := filepath.Clean("/" + job.JobInfo.ProjectFullPath)
	if p == "/" {
		return "project-" + fmt.Sprint(job.JobInfo.ProjectID)
	}
	return p[1:]
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown host"
	}
	return h
}

// finalUpdate sends the final state, repeating while the coordinator
// answers 202 and retrying transient failures, within FinalUpdateTimeout.
func finalUpdate(ctx context.Context, o *Options, job *coordinator.Job, api jobAPI, res Result, size int64, checksum string, log logrus.FieldLogger) error {
	reason := mapFailureReason(res.FailureReason, job.Features.FailureReasons)
	code := 0
	if res.FailureReason == coordinator.ScriptFailure {
		code = res.ExitCode
	}
	deadline := time.Now().Add(o.FinalUpdateTimeout)
	for attempt := 1; ; attempt++ {
		status, again, err := api.UpdateJob(ctx, job.ID, job.Token, res.State, reason, code, checksum, size)
		var wait time.Duration
		switch {
		case errors.Is(err, coordinator.ErrJobNotProcessing):
			log.WithField("status", status).Info("the coordinator already finished the job")
			return nil
		case err != nil:
			if !coordinator.Retryable(err) {
				return fmt.Errorf("report final state of job %d: %w", job.ID, err)
			}
			wait = backoff(o.RetryBackoff, attempt)
			if e, ok := errors.AsType[*coordinator.HTTPError](err); ok && e.RetryAfter > wait {
				wait = e.RetryAfter
			}
			log.WithError(err).WithField("attempt", attempt).Warn("final update failed; will retry")
		case again > 0:
			wait = min(again, o.MaxUpdateWait)
			log.WithField("attempt", attempt).Debug("final update accepted (202), repeating")
		default:
			log.WithFields(logrus.Fields{"state": res.State, "failure_reason": reason}).Info("job finished")
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("report final state of job %d: gave up after %d attempts", job.ID, attempt)
		}
		if !sleepCtx(ctx, wait) {
			return fmt.Errorf("report final state of job %d: %w", job.ID, ctx.Err())
		}
	}
}

// mapFailureReason maps reason onto what the coordinator accepts, as GitLab
// Runner does.
func mapFailureReason(reason coordinator.FailureReason, supported []string) coordinator.FailureReason {
	switch reason {
	case "":
		return ""
	case coordinator.ScriptFailure, coordinator.RunnerSystemFailure, coordinator.JobExecutionTimeout:
		return reason
	}
	if len(supported) == 0 || slices.Contains(supported, string(reason)) {
		return reason
	}
	return coordinator.UnknownFailure
}
