//go:build unix

package state

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	unlock, err := Lock(path)
	require.NoError(t, err)

	_, err = Lock(path)
	require.ErrorIs(t, err, ErrLocked, "a second holder is refused")

	st, err := os.Stat(path + ".lock")
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())

	unlock()
	unlock2, err := Lock(path)
	require.NoError(t, err, "released")
	unlock2()
}
