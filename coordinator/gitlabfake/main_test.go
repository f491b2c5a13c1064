package gitlabfake_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaks a goroutine (idle keep-alive
// connections of HTTP clients excepted).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
