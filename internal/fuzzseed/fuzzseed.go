// Package fuzzseed adds a package's test data files to a fuzz target's seed
// corpus.
package fuzzseed

import (
	"os"
	"path/filepath"
	"testing"
)

// AddFiles adds the content of every file matching pattern (a
// filepath.Glob pattern, relative to the package directory) as a seed of f.
func AddFiles(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatalf("seed pattern %q: %v", pattern, err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatalf("seed file: %v", err)
		}
		f.Add(data)
	}
}
