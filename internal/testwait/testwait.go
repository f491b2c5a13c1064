// Package testwait lets tests wait for values other goroutines send, with a
// deadline instead of a hang.
package testwait

import (
	"testing"
	"time"
)

// Receive returns the next n values of ch. It fails t, saying how many of
// the n "what" arrived, when they do not all arrive within timeout.
func Receive[T any](t testing.TB, ch <-chan T, n int, timeout time.Duration, what string) []T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	got := make([]T, 0, n)
	for len(got) < n {
		select {
		case v := <-ch:
			got = append(got, v)
		case <-deadline.C:
			t.Fatalf("only %d of %d %s", len(got), n, what)
		}
	}
	return got
}
