package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
)

// jobAPI is what the agent needs from the coordinator.
type jobAPI interface {
	PatchJobTrace(ctx context.Context, jobID int64, token config.Secret, offset int64, data []byte) (coordinator.TraceReply, error)
	UpdateJob(ctx context.Context, jobID int64, token config.Secret, state string, reason coordinator.FailureReason, exitCode int, checksum string, bytesize int64) (string, time.Duration, error)
}

// jobControl records what the coordinator said about the job: canceling
// (graceful: stop the script, run after_script, report) or aborted
// (canceled/failed/403: stop everything, report nothing more).
type jobControl struct {
	cancelingOnce, abortOnce sync.Once
	canceling, aborted       chan struct{}
}

func newJobControl() *jobControl {
	return &jobControl{canceling: make(chan struct{}), aborted: make(chan struct{})}
}

// status reacts to a Job-Status value (forbidden: the reply was a 403).
func (c *jobControl) status(s string, forbidden bool) {
	switch {
	case forbidden || s == "canceled" || s == "failed" || s == "success":
		c.abortOnce.Do(func() { close(c.aborted) })
		c.cancelingOnce.Do(func() { close(c.canceling) })
	case s == "canceling":
		c.cancelingOnce.Do(func() { close(c.canceling) })
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// traceBuffer holds the whole (masked) job log and streams it to the
// coordinator. Write is safe for concurrent use.
type traceBuffer struct {
	api   jobAPI
	jobID int64
	token config.Secret
	ctl   *jobControl
	log   logrus.FieldLogger
	opts  *Options

	mu        sync.Mutex
	data      []byte // guarded by mu
	truncated bool   // guarded by mu

	kick chan struct{}

	// sent is written by the sending goroutine (then by flush, after it
	// stopped) under mu; that goroutine may read it without mu.
	sent int64

	// Owned by the sending goroutine (then by flush, after it stopped).
	lastContact time.Time
	failures    int
	nextTry     time.Time
}

func newTraceBuffer(api jobAPI, job *coordinator.Job, ctl *jobControl, log logrus.FieldLogger, o *Options) *traceBuffer {
	return &traceBuffer{api: api, jobID: job.ID, token: job.Token, ctl: ctl, log: log, opts: o, kick: make(chan struct{}, 1), lastContact: time.Now()}
}

// Write appends masked output. Output beyond the limit is dropped.
func (t *traceBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.truncated {
		return len(p), nil
	}
	room := t.opts.OutputLimit - len(t.data)
	if len(p) > room {
		t.data = append(t.data, p[:max(room, 0)]...)
		t.data = fmt.Appendf(t.data, "\n\x1b[31;1mJob's log exceeded limit of %d bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n", t.opts.OutputLimit)
		t.truncated = true
	} else {
		t.data = append(t.data, p...)
	}
	if int64(len(t.data))-t.sent >= int64(t.opts.TraceChunkSize) {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// pendingChunk returns the next unsent chunk (a copy).
func (t *traceBuffer) pendingChunk() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sent >= int64(len(t.data)) {
		return nil
	}
	end := min(int64(len(t.data)), t.sent+int64(t.opts.TraceChunkSize))
	return append([]byte(nil), t.data[t.sent:end]...)
}

// run sends the trace periodically until ctx is done.
func (t *traceBuffer) run(ctx context.Context) {
	ticker := time.NewTicker(t.opts.TraceInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-t.kick:
		}
		if isClosed(t.ctl.aborted) {
			return
		}
		t.sendPending(ctx, false)
	}
}

// sendPending sends every pending chunk (or a keep-alive when there is
// none and the coordinator was not contacted for KeepAliveInterval). It
// returns false after a failure. Unless final, it backs off after
// failures.
func (t *traceBuffer) sendPending(ctx context.Context, final bool) bool {
	if !final && time.Now().Before(t.nextTry) {
		return false
	}
	sentSomething := false
	for {
		chunk := t.pendingChunk()
		if len(chunk) == 0 {
			break
		}
		if !t.patch(ctx, chunk) {
			return false
		}
		sentSomething = true
		if isClosed(t.ctl.aborted) {
			return true
		}
	}
	if !sentSomething && !final && time.Since(t.lastContact) >= t.opts.KeepAliveInterval {
		status, _, err := t.api.UpdateJob(ctx, t.jobID, t.token, "running", "", 0, "", 0)
		if err != nil && !errors.Is(err, coordinator.ErrJobNotProcessing) {
			t.failed(err, "keep-alive")
			return false
		}
		t.ok()
		t.ctl.status(status, errors.Is(err, coordinator.ErrJobNotProcessing))
	}
	return true
}

func (t *traceBuffer) patch(ctx context.Context, chunk []byte) bool {
	reply, err := t.api.PatchJobTrace(ctx, t.jobID, t.token, t.sent, chunk)
	switch {
	case err == nil:
		t.setSent(t.sent + int64(len(chunk)))
		t.ok()
		t.ctl.status(reply.JobStatus, false)
		return true
	case errors.Is(err, coordinator.ErrTraceRange):
		t.mu.Lock()
		size := int64(len(t.data))
		t.mu.Unlock()
		if reply.Stored >= 0 && reply.Stored <= size {
			t.log.WithFields(logrus.Fields{"offset": t.sent, "stored": reply.Stored}).Warn("trace offset mismatch, resending from the stored size")
			t.setSent(reply.Stored)
			t.ok()
			return true
		}
		t.failed(err, "trace")
		return false
	case errors.Is(err, coordinator.ErrJobNotProcessing):
		t.ok()
		t.ctl.status(reply.JobStatus, true)
		return true
	default:
		t.failed(err, "trace")
		return false
	}
}

func (t *traceBuffer) setSent(n int64) {
	t.mu.Lock()
	t.sent = n
	t.mu.Unlock()
}

func (t *traceBuffer) ok() {
	t.lastContact = time.Now()
	t.failures = 0
	t.nextTry = time.Time{}
}

func (t *traceBuffer) failed(err error, what string) {
	t.failures++
	d := backoff(t.opts.RetryBackoff, t.failures)
	if e, ok := errors.AsType[*coordinator.HTTPError](err); ok && e.RetryAfter > d {
		d = e.RetryAfter
	}
	t.nextTry = time.Now().Add(d)
	t.log.WithError(err).WithField("attempt", t.failures).Warn("sending " + what + " to the coordinator failed; will retry")
}

// flush sends what is left, retrying transient failures for a bounded
// time. It returns the number of bytes the coordinator holds and the
// checksum of those bytes.
func (t *traceBuffer) flush(ctx context.Context) (int64, string) {
	deadline := time.Now().Add(t.opts.FinalUpdateTimeout / 2)
	for attempt := 1; ; attempt++ {
		if t.sendPending(ctx, true) && len(t.pendingChunk()) == 0 {
			break
		}
		if isClosed(t.ctl.aborted) || time.Now().After(deadline) || !sleepCtx(ctx, backoff(t.opts.RetryBackoff, attempt)) {
			break
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent, fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE(t.data[:t.sent]))
}

func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
