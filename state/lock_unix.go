//go:build unix

package state

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned by Lock when another process holds the lock: a
// paas-runner daemon is running on this state file.
var ErrLocked = errors.New("state file is in use (is the paas-runner daemon running?)")

// Lock takes an exclusive advisory lock (flock) on <path>.lock, created
// with mode 0600 if needed. The daemon holds it for its whole run; offline
// tools that modify the state take it too and fail with ErrLocked instead
// of racing the daemon. The lock is released by unlock or when the process
// exits (even by SIGKILL). The lock file is never removed.
func Lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("open state lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", f.Name(), ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
