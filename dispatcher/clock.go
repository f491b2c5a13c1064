package dispatcher

import "time"

// Clock is the dispatcher's source of time, injectable so tests can control
// it. Implementations must be safe for concurrent use (operations read Now
// too). The zero value of RealClock is the wall clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the subset of *time.Timer the dispatcher uses.
type Timer interface {
	// C returns the channel the timer fires on.
	C() <-chan time.Time
	// Reset re-arms the timer to fire after d (Go ≥ 1.23 semantics: no
	// stale value is delivered after Reset).
	Reset(d time.Duration) bool
	// Stop prevents the timer from firing.
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
