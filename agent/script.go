package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stepOutcome is how one step ended.
type stepOutcome int

const (
	stepSucceeded stepOutcome = iota
	stepFailed                // the script exited non-zero
	stepTimedOut              // the step's context deadline passed
	stepStopped               // the coordinator canceled the job
)

// shellQuote quotes s for POSIX shells.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// buildScript returns one shell script running lines in order, echoing each
// in green as GitLab Runner does, and stopping at the first failing line.
func buildScript(shell string, lines []string) string {
	var b strings.Builder
	if filepath.Base(shell) == "bash" {
		b.WriteString("set -eo pipefail\n")
	} else {
		b.WriteString("set -e\n(set -o pipefail) 2>/dev/null && set -o pipefail\n")
	}
	b.WriteString("set +o noclobber\n")
	for _, line := range lines {
		shown := line
		if first, _, multi := strings.Cut(strings.TrimSpace(line), "\n"); multi {
			shown = first + " # collapsed multi-line command"
		}
		fmt.Fprintf(&b, "printf '\\033[32;1m$ %%s\\033[0;m\\n' %s\n", shellQuote(shown))
		b.WriteString(line)
		b.WriteString("\n")
	}
	return b.String()
}

// findShell returns the shell to run scripts with.
func findShell(forced string) (string, error) {
	candidates := []string{"bash", "sh"}
	if forced != "" {
		candidates = []string{forced}
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("find shell: none of %v in PATH", candidates)
}

// stepRun is one script execution.
type stepRun struct {
	shell   string
	dir     string // working directory
	tmpDir  string // where the script file is written
	env     []string
	out     io.Writer
	grace   time.Duration
	stop    <-chan struct{} // closed when the coordinator cancels
	name    string
	lines   []string
	timeout time.Duration // 0 = only ctx
}

// run executes the step's script in its own process group. ctx's deadline
// (or s.timeout) is a timeout; s.stop is a cancellation. Either kills the
// whole group: SIGTERM, then SIGKILL after the grace delay.
func (s *stepRun) run(ctx context.Context) (stepOutcome, int, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	file := filepath.Join(s.tmpDir, "script-"+s.name+".sh")
	if err := os.WriteFile(file, []byte(buildScript(s.shell, s.lines)), 0o700); err != nil {
		return stepFailed, 0, fmt.Errorf("write %s script: %w", s.name, err)
	}
	defer os.Remove(file)

	pr, pw, err := os.Pipe()
	if err != nil {
		return stepFailed, 0, fmt.Errorf("create output pipe: %w", err)
	}
	cmd := exec.Command(s.shell, file)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return stepFailed, 0, fmt.Errorf("start %s: %w", s.name, err)
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(s.out, pr)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	pgid := cmd.Process.Pid
	var outcome stepOutcome
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		outcome = stepTimedOut
		werr = killGroup(pgid, waited, s.grace)
	case <-s.stop:
		outcome = stepStopped
		werr = killGroup(pgid, waited, s.grace)
	}
	// Background processes the script left behind die with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	tm := time.NewTimer(s.grace + time.Second)
	select {
	case <-copied:
	case <-tm.C:
		// Someone outside the group still holds the pipe.
	}
	tm.Stop()
	pr.Close()
	<-copied

	if outcome != stepSucceeded {
		return outcome, exitCodeOf(werr), nil
	}
	if werr != nil {
		if _, ok := errors.AsType[*exec.ExitError](werr); ok {
			return stepFailed, exitCodeOf(werr), nil
		}
		return stepFailed, 0, fmt.Errorf("wait for %s: %w", s.name, werr)
	}
	return stepSucceeded, 0, nil
}

// killGroup sends SIGTERM to the process group, then SIGKILL after grace,
// and returns the Wait error.
func killGroup(pgid int, waited <-chan error, grace time.Duration) error {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	tm := time.NewTimer(grace)
	defer tm.Stop()
	select {
	case err := <-waited:
		return err
	case <-tm.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return <-waited
	}
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
