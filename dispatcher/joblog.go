package dispatcher

import (
	"strings"
)

// ANSI sequences used for the lines paas-runner writes into job logs.
const (
	ansiBoldRed = "\x1b[31;1m"
	ansiReset   = "\x1b[0m"
	// jobLogPrefix starts every line paas-runner writes into a job log.
	jobLogPrefix = "paas-runner: "
)

// jobLogLine formats msg as the one kind of line paas-runner appends to a
// user-visible job log: prefixed, bold red, newline-terminated. Every line
// the dispatcher writes goes through here; msg must be public text
// (executors.PublicMessage or a dispatcher-authored sentence), never an
// internal error. Control characters other than tabs are dropped so a
// message cannot forge terminal sequences; the result's length is in bytes,
// which is what trace offsets count.
func jobLogLine(msg string) []byte {
	var b strings.Builder
	b.Grow(len(msg) + len(ansiBoldRed) + len(ansiReset) + len(jobLogPrefix) + 2)
	b.WriteString(ansiBoldRed)
	b.WriteString(jobLogPrefix)
	for _, r := range msg {
		switch {
		case r == '\n':
			b.WriteString(ansiReset + "\n" + ansiBoldRed + jobLogPrefix)
		case r == '\t' || r >= 0x20 && r != 0x7f:
			b.WriteRune(r)
		}
	}
	b.WriteString(ansiReset)
	b.WriteString("\n")
	return []byte(b.String())
}
