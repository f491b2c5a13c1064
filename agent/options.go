package agent

import (
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// Defaults of Options.
const (
	DefaultHTTPTimeout        = 30 * time.Second
	DefaultTraceInterval      = 3 * time.Second
	DefaultKeepAliveInterval  = 3 * time.Second
	DefaultTraceChunkSize     = 1 << 20
	DefaultOutputLimit        = 16 << 20
	DefaultAfterScriptTimeout = 5 * time.Minute
	DefaultKillGrace          = 2 * time.Second
	DefaultRetryBackoff       = time.Second
	DefaultFinalUpdateTimeout = 10 * time.Minute
	DefaultMaxUpdateWait      = 30 * time.Second
)

// Options configure Run. Zero values take the defaults above.
type Options struct {
	// CoordinatorURL is the runner's `url` (without /api/v4).
	CoordinatorURL string
	// Job is the acquired job payload.
	Job *coordinator.Job
	// BuildsDir is CI_BUILDS_DIR; the project is checked out in
	// <BuildsDir>/<project full path>. Default: ./builds.
	BuildsDir string
	// Logger receives the agent's own (non job-log) messages.
	Logger logrus.FieldLogger
	// HTTPTimeout bounds each coordinator request.
	HTTPTimeout time.Duration
	// TraceInterval is the period of trace PATCHes.
	TraceInterval time.Duration
	// KeepAliveInterval: when no trace was sent for that long, a PUT
	// state=running asks the coordinator whether the job was canceled.
	KeepAliveInterval time.Duration
	// TraceChunkSize is the largest PATCH body; a PATCH is also sent as soon
	// as that much output is waiting.
	TraceChunkSize int
	// OutputLimit caps the job log; output beyond it is dropped with a note.
	OutputLimit int
	// AfterScriptTimeout bounds after_script (job variable
	// RUNNER_AFTER_SCRIPT_TIMEOUT, a Go duration, overrides it).
	AfterScriptTimeout time.Duration
	// KillGrace is the delay between SIGTERM and SIGKILL of a step's
	// process group.
	KillGrace time.Duration
	// RetryBackoff is the first delay between retries of transient
	// coordinator failures (doubles, capped at 30 s).
	RetryBackoff time.Duration
	// FinalUpdateTimeout bounds the final-update loop (202 repeats,
	// retries).
	FinalUpdateTimeout time.Duration
	// MaxUpdateWait caps the wait between final updates the coordinator
	// asks for with 202 + X-GitLab-Trace-Update-Interval (default 30 s).
	MaxUpdateWait time.Duration
	// Shell forces the shell ("bash" or "sh"); default bash when found,
	// else sh.
	Shell string
	// DockerAvailable reports whether the agent can reach a Docker daemon
	// (decides what jobs with services do); default: DOCKER_HOST is set or
	// /var/run/docker.sock exists.
	DockerAvailable func() bool
	// Observer, when set, is passed to the coordinator client (metrics).
	Observer coordinator.Observer
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HTTPTimeout, DefaultHTTPTimeout)
	def(&o.TraceInterval, DefaultTraceInterval)
	def(&o.KeepAliveInterval, DefaultKeepAliveInterval)
	def(&o.AfterScriptTimeout, DefaultAfterScriptTimeout)
	def(&o.KillGrace, DefaultKillGrace)
	def(&o.RetryBackoff, DefaultRetryBackoff)
	def(&o.FinalUpdateTimeout, DefaultFinalUpdateTimeout)
	def(&o.MaxUpdateWait, DefaultMaxUpdateWait)
	if o.TraceChunkSize <= 0 {
		o.TraceChunkSize = DefaultTraceChunkSize
	}
	if o.OutputLimit <= 0 {
		o.OutputLimit = DefaultOutputLimit
	}
	if o.BuildsDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			wd = os.TempDir()
		}
		o.BuildsDir = filepath.Join(wd, "builds")
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		o.Logger = l
	}
	if o.DockerAvailable == nil {
		o.DockerAvailable = dockerAvailable
	}
}

func dockerAvailable() bool {
	if os.Getenv("DOCKER_HOST") != "" {
		return true
	}
	_, err := os.Stat("/var/run/docker.sock")
	return err == nil
}

// Result is how a job ended.
type Result struct {
	// State is the final state reported: "success" or "failed" ("" when
	// the job was aborted by the coordinator and nothing was reported).
	State string
	// FailureReason is set when State is "failed".
	FailureReason coordinator.FailureReason
	// ExitCode is the exit code of the failing script, when there is one.
	ExitCode int
	// Canceled is true when the coordinator canceled the job.
	Canceled bool
	// TraceBytes is the size of the job log the coordinator holds.
	TraceBytes int64
}
