package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Encode serialises f in the current format (version set to Version, jobs
// sorted). The output is compact JSON followed by a newline.
func Encode(f *File) ([]byte, error) {
	jobs := f.Jobs
	sortJobs(jobs)
	b, err := appendHeader(make([]byte, 0, 64+400*len(jobs)), f.SavedAt)
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJob(b, &jobs[i], nil); err != nil {
			return nil, err
		}
	}
	return append(b, "]}\n"...), nil
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
	// One pass reads our layout and notices a Heptapod one.
	var doc struct {
		Version  *int            `json:"version"`
		SavedAt  time.Time       `json:"saved_at"`
		Jobs     []Job           `json:"jobs"`
		Launched json.RawMessage `json:"launched"`
		Pending  json.RawMessage `json:"pending"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		// A newer version may have changed the job layout: say so
		// rather than "corrupt".
		var probe struct {
			Version int `json:"version"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.Version > Version {
			return nil, nil, false, errNewer(probe.Version)
		}
		return nil, nil, false, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if doc.Version == nil {
		if doc.Launched != nil || doc.Pending != nil {
			f, warnings, err := ImportHeptapod(data, runners)
			return f, warnings, true, err
		}
		return nil, nil, false, fmt.Errorf("%w: neither a \"version\" key nor a Heptapod layout", ErrCorrupt)
	}
	switch v := *doc.Version; {
	case v > Version:
		return nil, nil, false, errNewer(v)
	case v < 1:
		return nil, nil, false, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	f := &File{Version: *doc.Version, SavedAt: doc.SavedAt}
	var warnings []string
	jobs, dups := dedupe(doc.Jobs)
	for _, k := range dups {
		warnings = append(warnings, fmt.Sprintf("job %d of runner %s recorded twice; keeping the last record", k.JobID, k.Runner))
	}
	if jobs == nil {
		jobs = []Job{}
	}
	f.Jobs = jobs
	sortJobs(f.Jobs)
	return f, warnings, false, nil
}

func errNewer(v int) error {
	return fmt.Errorf("%w: version %d is newer than %d (written by a newer paas-runner; upgrade it or move the file away)",
		ErrUnsupportedVersion, v, Version)
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
