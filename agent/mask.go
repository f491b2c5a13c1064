package agent

import (
	"bytes"
	"io"
	"sort"
)

// maskText replaces a secret in the job log.
const maskText = "[MASKED]"

// Masker is a streaming io.WriteCloser that replaces every occurrence of its
// secrets by "[MASKED]" before writing to the underlying writer, even when a
// secret is split across Write calls: it holds back the longest tail that is
// the beginning of a secret (at most len(longest secret)-1 bytes), or a
// match that could still grow into a longer secret, until more data or
// Close arrives; everything else is written at once. It is not safe for concurrent
// use.
type Masker struct {
	w       io.Writer
	secrets [][]byte // longest first
	maxLen  int
	pending []byte
	out     []byte
}

// NewMasker returns a Masker writing to w. Empty secrets are ignored;
// duplicates are removed.
func NewMasker(w io.Writer, secrets []string) *Masker {
	m := &Masker{w: w}
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		m.secrets = append(m.secrets, []byte(s))
		m.maxLen = max(m.maxLen, len(s))
	}
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

// Write masks p (together with held-back bytes) and writes what is safe.
// It always reports len(p) consumed unless the underlying writer fails.
func (m *Masker) Write(p []byte) (int, error) {
	if len(m.secrets) == 0 {
		return m.w.Write(p)
	}
	m.pending = append(m.pending, p...)
	if err := m.flush(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes the held-back bytes (masked). It does not close the
// underlying writer.
func (m *Masker) Close() error {
	if len(m.secrets) == 0 {
		return nil
	}
	return m.flush(true)
}

// flush masks m.pending; unless final it keeps back the part that may be the
// start of a secret.
func (m *Masker) flush(final bool) error {
	buf := m.pending
	out := m.out[:0]
	i := 0
	for {
		pos, n := m.earliest(buf[i:])
		if pos < 0 {
			break
		}
		abs := i + pos
		// A match covered by the start of a (longer) secret that continues
		// past the data received so far: decide once more data is there.
		if !final {
			if k := m.partialSuffix(buf[i:]); k > 0 && len(buf)-k <= abs {
				break
			}
		}
		out = append(out, buf[i:abs]...)
		out = append(out, maskText...)
		i = abs + n
	}
	keepFrom := len(buf)
	if !final {
		keepFrom = len(buf) - m.partialSuffix(buf[i:])
	}
	out = append(out, buf[i:keepFrom]...)
	rest := copy(buf, buf[keepFrom:])
	m.pending = buf[:rest]
	m.out = out
	if len(out) == 0 {
		return nil
	}
	_, err := m.w.Write(out)
	return err
}

// earliest returns the position and length of the earliest (then longest)
// secret occurrence in b, or -1.
func (m *Masker) earliest(b []byte) (int, int) {
	best, bestLen := -1, 0
	for _, s := range m.secrets {
		limit := b
		if best >= 0 {
			// Only an occurrence starting at or before best can win.
			end := min(len(b), best+len(s))
			limit = b[:end]
		}
		if p := bytes.Index(limit, s); p >= 0 && (best < 0 || p < best || (p == best && len(s) > bestLen)) {
			best, bestLen = p, len(s)
		}
	}
	return best, bestLen
}

// partialSuffix returns the length of the longest suffix of b that is a
// proper prefix of a secret: those bytes must wait for more data.
func (m *Masker) partialSuffix(b []byte) int {
	for k := min(len(b), m.maxLen-1); k > 0; k-- {
		suffix := b[len(b)-k:]
		for _, s := range m.secrets {
			if len(s) > k && bytes.HasPrefix(s, suffix) {
				return k
			}
		}
	}
	return 0
}
