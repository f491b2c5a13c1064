package config

import (
	"fmt"
	"io"
	"strconv"
)

// Masked is what a Secret prints instead of its value.
const Masked = "[MASKED]"

// Secret is a configuration value that must never be printed: runner tokens,
// job tokens, Clever tokens, trace-watch tokens, S3 keys. Every formatting
// path (every fmt verb and flag, text and JSON marshalling, logrus fields)
// yields "[MASKED]" (or "" for an empty secret); Reveal returns the value for
// the one place that sends it.
type Secret string

// Reveal returns the secret value. Call it only where the value is sent to
// the service it authenticates against.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Masked
}

// GoString implements fmt.GoStringer so %#v masks too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format implements fmt.Formatter so that no verb (%d, %x, %q, %#v, …)
// can print the value: every verb prints the masked form, quoted for %q and
// %#v.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalText implements encoding.TextMarshaler (JSON, TOML, logrus JSON).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}

// LogValue returns the masked form for structured loggers.
func (s Secret) LogValue() string { return s.String() }
