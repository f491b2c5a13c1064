package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The state file is written by concatenating per-job encodings (see
// FileStore's writer), so a job is encoded once per change instead of once
// per checkpoint. appendJob produces exactly the bytes json.Marshal gives
// for a Job (same field order, omitempty/omitzero, HTML escaping, float
// format, compacted raw fields), which TestAppendJobMatchesMarshal checks;
// anything unusual falls back to encoding/json.

// rawCache remembers the compacted form of the last raw field seen for a
// job, so that re-putting a job with an unchanged payload or resource dump
// costs a memcmp instead of a JSON validation.
type rawCache struct {
	in, out []byte
}

// compact returns in as encoding/json would emit a json.RawMessage:
// validated, compacted and HTML-escaped. c may be nil.
func (c *rawCache) compact(in []byte) ([]byte, error) {
	if c != nil && c.in != nil && bytes.Equal(c.in, in) {
		return c.out, nil
	}
	out, err := compactRaw(in)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.in, c.out = in, out
	}
	return out, nil
}

func compactRaw(in []byte) ([]byte, error) {
	if plainRaw(in) && json.Valid(in) {
		return in, nil // already what Marshal would write
	}
	out, err := json.Marshal(json.RawMessage(in))
	if err != nil {
		return nil, fmt.Errorf("encode raw field: %w", err)
	}
	return out, nil
}

// plainRaw reports whether in has none of the bytes that Marshal's
// compaction of a RawMessage could rewrite (white space, HTML-escaped
// characters, the first byte of U+2028/U+2029).
func plainRaw(in []byte) bool {
	for _, c := range in {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2:
			return false
		}
	}
	return true
}

// jobCache holds the compacted raw fields of one job between encodings.
type jobCache struct {
	resource, payload rawCache
}

// appendJob appends the JSON encoding of j to b. c (may be nil) caches the
// raw fields across calls for the same job.
func appendJob(b []byte, j *Job, c *jobCache) ([]byte, error) {
	var res, pay *rawCache
	if c != nil {
		res, pay = &c.resource, &c.payload
	}
	b = append(b, `{"runner":`...)
	b = appendString(b, j.Runner)
	b = append(b, `,"job_id":`...)
	b = strconv.AppendInt(b, j.JobID, 10)
	b = append(b, `,"token":`...)
	b = appendString(b, j.Token)
	if j.ProjectID != 0 {
		b = append(b, `,"project_id":`...)
		b = strconv.AppendInt(b, j.ProjectID, 10)
	}
	if j.Flavor != "" {
		b = append(b, `,"flavor":`...)
		b = appendString(b, j.Flavor)
	}
	var err error
	b = append(b, `,"expected_weight":`...)
	if b, err = appendFloat(b, j.ExpectedWeight); err != nil {
		return nil, err
	}
	if j.Weight != 0 {
		b = append(b, `,"weight":`...)
		if b, err = appendFloat(b, j.Weight); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"trace_offset":`...)
	b = strconv.AppendInt(b, j.TraceOffset, 10)
	b = append(b, `,"phase":`...)
	b = appendString(b, string(j.Phase))
	b = append(b, `,"resource_name":`...)
	b = appendString(b, j.ResourceName)
	if len(j.Resource) > 0 {
		out, err := res.compact(j.Resource)
		if err != nil {
			return nil, fmt.Errorf("encode job %d resource: %w", j.JobID, err)
		}
		b = append(b, `,"resource":`...)
		b = append(b, out...)
	}
	if len(j.Payload) > 0 {
		out, err := pay.compact(j.Payload)
		if err != nil {
			return nil, fmt.Errorf("encode job %d payload: %w", j.JobID, err)
		}
		b = append(b, `,"payload":`...)
		b = append(b, out...)
	}
	if f := j.PendingFailure; f != nil {
		b = append(b, `,"pending_failure":{"reason":`...)
		b = appendString(b, f.Reason)
		b = append(b, `,"message":`...)
		b = appendString(b, f.Message)
		b = append(b, '}')
	}
	b = append(b, `,"acquired_at":`...)
	if b, err = appendTime(b, j.AcquiredAt); err != nil {
		return nil, err
	}
	if !j.StartedAt.IsZero() {
		b = append(b, `,"started_at":`...)
		if b, err = appendTime(b, j.StartedAt); err != nil {
			return nil, err
		}
	}
	if !j.FinishedAt.IsZero() {
		b = append(b, `,"finished_at":`...)
		if b, err = appendTime(b, j.FinishedAt); err != nil {
			return nil, err
		}
	}
	if j.KeepResource {
		b = append(b, `,"keep_resource":true`...)
	}
	if j.AcceptPending {
		b = append(b, `,"accept_pending":true`...)
	}
	return append(b, '}'), nil
}

// appendString appends s quoted; strings needing any escaping go through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json does for a float64.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("encode state: unsupported value %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendTime appends t as time.Time.MarshalJSON does, without allocating.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b) // the strict RFC 3339 of MarshalJSON
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(b, '"'), nil
}

// appendHeader appends the file envelope up to the opening of "jobs".
func appendHeader(b []byte, savedAt time.Time) ([]byte, error) {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"saved_at":`...)
	b, err := appendTime(b, savedAt.UTC())
	if err != nil {
		return nil, err
	}
	return append(b, `,"jobs":[`...), nil
}
