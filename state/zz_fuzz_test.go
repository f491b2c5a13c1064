package state_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/internal/fuzzseed"
	"gitlab.com/paas-runner/paas-runner/state"
)

// fuzzRunners maps Heptapod runner names to short ids for the import.
var fuzzRunners = map[string]string{"glrt-abc": "3fa9c2d17b04", "ABCDEFGH": "0123456789ab"}

// FuzzDecode feeds arbitrary bytes to the state loader (our versioned
// layout and the Heptapod import): it never panics, fails or returns a
// file, and whatever it accepts survives an Encode/Decode round trip with
// the same jobs. Seeds: testdata/*.json and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	fuzzseed.AddFiles(f, filepath.Join("testdata", "*.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, _, err := state.Decode(data, fuzzRunners)
		if err != nil {
			require.Nil(t, file)
			return
		}
		require.NotNil(t, file)
		enc, err := state.Encode(file)
		require.NoError(t, err)
		again, _, err := state.Decode(enc, fuzzRunners)
		require.NoError(t, err, "re-decoding our own encoding")
		require.Len(t, again.Jobs, len(file.Jobs))
		for i := range file.Jobs {
			require.Equal(t, file.Jobs[i].JobID, again.Jobs[i].JobID)
			require.Equal(t, file.Jobs[i].Runner, again.Jobs[i].Runner)
			require.Equal(t, file.Jobs[i].Phase, again.Jobs[i].Phase)
			require.Equal(t, file.Jobs[i].ResourceName, again.Jobs[i].ResourceName)
		}
	})
}

// FuzzImportHeptapod feeds arbitrary bytes to the Heptapod state import:
// it never panics and either fails or returns a file.
func FuzzImportHeptapod(f *testing.F) {
	fuzzseed.AddFiles(f, filepath.Join("testdata", "heptapod-*.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, _, err := state.ImportHeptapod(data, fuzzRunners)
		if err != nil {
			return
		}
		require.NotNil(t, file)
		_, err = state.Encode(file)
		require.NoError(t, err)
	})
}
