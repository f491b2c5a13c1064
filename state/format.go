package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Encode serialises f in the current format (version set to Version, jobs
// sorted). The output is compact JSON followed by a newline.
func Encode(f *File) ([]byte, error) {
	out := File{Version: Version, SavedAt: f.SavedAt.UTC(), Jobs: f.Jobs}
	if out.Jobs == nil {
		out.Jobs = []Job{}
	}
	SortJobs(out.Jobs)
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode parses the content of a state file. It accepts the current
// versioned format and the Heptapod PAAS Runner layout (top-level
// "launched"/"pending" keys and no "version"), which it imports with
// ImportHeptapod using runners (Heptapod runner name → runner short id).
// Warnings describe what was kept but could not be mapped exactly.
// Errors wrap ErrCorrupt or ErrUnsupportedVersion.
func Decode(data []byte, runners map[string]string) (*File, []string, error) {
	f, warnings, _, err := decode(data, runners)
	return f, warnings, err
}

// decode is Decode, also telling whether data was a Heptapod file.
func decode(data []byte, runners map[string]string) (*File, []string, bool, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, false, fmt.Errorf("%w: empty file", ErrCorrupt)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	rawVersion, versioned := top["version"]
	if !versioned {
		_, hasLaunched := top["launched"]
		_, hasPending := top["pending"]
		if hasLaunched || hasPending {
			f, warnings, err := ImportHeptapod(data, runners)
			return f, warnings, true, err
		}
		return nil, nil, false, fmt.Errorf("%w: neither a \"version\" key nor a Heptapod layout", ErrCorrupt)
	}
	var version int
	if err := json.Unmarshal(rawVersion, &version); err != nil {
		return nil, nil, false, fmt.Errorf("%w: version: %w", ErrCorrupt, err)
	}
	switch {
	case version > Version:
		return nil, nil, false, fmt.Errorf("%w: version %d is newer than %d (written by a newer paas-runner; upgrade it or move the file away)",
			ErrUnsupportedVersion, version, Version)
	case version < 1:
		return nil, nil, false, fmt.Errorf("%w: version %d", ErrCorrupt, version)
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	var warnings []string
	jobs, dups := dedupe(f.Jobs)
	for _, k := range dups {
		warnings = append(warnings, fmt.Sprintf("job %d of runner %s recorded twice; keeping the last record", k.JobID, k.Runner))
	}
	f.Jobs = jobs
	SortJobs(f.Jobs)
	return &f, warnings, false, nil
}

// dedupe keeps the last job of each key and returns the duplicated keys.
func dedupe(jobs []Job) ([]Job, []Key) {
	idx := make(map[Key]int, len(jobs))
	out := make([]Job, 0, len(jobs))
	var dups []Key
	for _, j := range jobs {
		if i, ok := idx[j.Key()]; ok {
			out[i] = j
			dups = append(dups, j.Key())
			continue
		}
		idx[j.Key()] = len(out)
		out = append(out, j)
	}
	return out, dups
}

// ReadFile reads and decodes the state file at path without modifying it
// (for inspection tools). A missing file gives an empty File.
func ReadFile(path string, runners map[string]string) (*File, []string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Version: Version, Jobs: []Job{}}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read state file: %w", err)
	}
	f, warnings, err := Decode(data, runners)
	if err != nil {
		return nil, nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return f, warnings, nil
}
