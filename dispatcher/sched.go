package dispatcher

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"time"
)

// timerRef is a scheduled owner callback; cancel it by setting cancelled.
type timerRef struct {
	at        time.Time
	seq       uint64
	fn        func()
	cancelled bool
}

func (t *timerRef) cancel() {
	if t != nil {
		t.cancelled = true
	}
}

// timerHeap orders owner callbacks by due time (ties by scheduling order).
type timerHeap []*timerRef

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(*timerRef)) }
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}

// at schedules fn on the owner goroutine at t (owner only).
func (d *Dispatcher) at(t time.Time, fn func()) *timerRef {
	d.timerSeq++
	ref := &timerRef{at: t, seq: d.timerSeq, fn: fn}
	heap.Push(&d.timers, ref)
	return ref
}

// after schedules fn on the owner goroutine after delay (owner only).
func (d *Dispatcher) after(delay time.Duration, fn func()) *timerRef {
	return d.at(d.clock.Now().Add(delay), fn)
}

// fireTimers runs every due callback (owner only).
func (d *Dispatcher) fireTimers() {
	now := d.clock.Now()
	for d.timers.Len() > 0 {
		top := d.timers[0]
		if top.cancelled {
			heap.Pop(&d.timers)
			continue
		}
		if top.at.After(now) {
			return
		}
		heap.Pop(&d.timers)
		top.fn()
		d.afterEvent()
	}
}

// nextTimer returns the due time of the earliest live callback.
func (d *Dispatcher) nextTimer() (time.Time, bool) {
	for d.timers.Len() > 0 {
		if d.timers[0].cancelled {
			heap.Pop(&d.timers)
			continue
		}
		return d.timers[0].at, true
	}
	return time.Time{}, false
}

// opClass says how an operation is bounded and whether shutdown waits for
// it.
type opClass int

const (
	// classLaunch: provisioning, launches, adoption. Never cancelled in
	// flight; shutdown waits for them (bounded by shutdown_timeout).
	classLaunch opClass = iota
	// classPoll: job requests. Never cancelled in flight (a job acquired by
	// a cancelled request would be lost); shutdown waits for them.
	classPoll
	// classCheck: coordinator reads and reports, trace watch, liveness,
	// restore, listings. Cancelled at shutdown.
	classCheck
	// classDecommission: resource deletions. Cancelled at shutdown (the
	// record stays and the deletion resumes after restart).
	classDecommission
	numClasses
)

// critical reports whether shutdown waits for operations of the class.
func (c opClass) critical() bool { return c == classLaunch || c == classPoll }

// pool bounds the concurrency of one class of operations; excess operations
// wait in FIFO order. Owned by the owner goroutine.
type pool struct {
	limit   int // 0 = unbounded
	running int
	queue   []func()
}

// op runs fn in a goroutine of class c (bounded by its pool) and then runs
// the returned callback on the owner goroutine. fn must only use values it
// captured at submission, never owner state. Owner only.
func (d *Dispatcher) op(c opClass, fn func(ctx context.Context) func()) {
	if d.stopping {
		return // persisted state lets the next start resume it
	}
	p := &d.pools[c]
	start := func() {
		p.running++
		if c.critical() {
			d.critical++
		}
		ctx, cancel := d.opContext(c)
		d.wg.Go(func() {
			defer cancel()
			done := fn(ctx)
			d.send(func() {
				p.running--
				if c.critical() {
					d.critical--
				}
				d.pump(p)
				if done != nil {
					done()
				}
			})
		})
	}
	if p.limit > 0 && p.running >= p.limit {
		p.queue = append(p.queue, start)
		return
	}
	start()
}

// pump starts queued operations while the pool has room (owner only).
func (d *Dispatcher) pump(p *pool) {
	for len(p.queue) > 0 && (p.limit == 0 || p.running < p.limit) && !d.stopping {
		next := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		next()
	}
}

// opContext returns the context of one operation: critical operations are
// detached from shutdown (context.WithoutCancel) and bounded by their own
// timeout; the others stop when shutdown begins.
func (d *Dispatcher) opContext(c opClass) (context.Context, context.CancelFunc) {
	switch c {
	case classLaunch:
		return context.WithTimeout(context.WithoutCancel(d.opCtx), d.tuning.ProvisionTimeout)
	case classPoll:
		return context.WithTimeout(context.WithoutCancel(d.opCtx), d.tuning.CallTimeout)
	case classDecommission:
		return context.WithTimeout(d.opCtx, d.tuning.ProvisionTimeout)
	default:
		return context.WithTimeout(d.opCtx, d.tuning.CallTimeout)
	}
}

// send hands a callback to the owner; it never blocks once the owner has
// exited.
func (d *Dispatcher) send(fn func()) {
	select {
	case d.events <- fn:
	case <-d.exited:
	}
}

// backoff returns the next delay of an exponential back-off with ±20 %
// jitter: initial when cur is 0, else twice cur, capped at max.
func backoff(cur, initial, limit time.Duration) time.Duration {
	next := initial
	if cur > 0 {
		next = 2 * cur
	}
	if next > limit {
		next = limit
	}
	if next <= 0 {
		next = time.Millisecond
	}
	jitter := 0.8 + 0.4*rand.Float64() //nolint:gosec // jitter only
	return time.Duration(float64(next) * jitter)
}
