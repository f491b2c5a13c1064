//go:build !unix

package state

import "errors"

// ErrLocked is returned by Lock when another process holds the lock.
var ErrLocked = errors.New("state file is in use (is the paas-runner daemon running?)")

// Lock is not supported on this platform.
func Lock(path string) (unlock func(), err error) {
	return nil, errors.New("state file locking is only supported on unix")
}
