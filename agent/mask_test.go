package agent

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMasker(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		chunks  []string
		want    string
	}{
		{name: "no secrets", chunks: []string{"hello ", "world"}, want: "hello world"},
		{name: "whole secret", secrets: []string{"s3cr3t-value"}, chunks: []string{"a s3cr3t-value b"}, want: "a [MASKED] b"},
		{name: "split secret", secrets: []string{"s3cr3t-value"}, chunks: []string{"a s3c", "r3t-va", "lue b"}, want: "a [MASKED] b"},
		{name: "byte by byte", secrets: []string{"tok123"}, chunks: strings.Split("xtok123tok123y", ""), want: "x[MASKED][MASKED]y"},
		{name: "secret at end", secrets: []string{"abcdef"}, chunks: []string{"xx abc", "def"}, want: "xx [MASKED]"},
		{name: "prefix not secret", secrets: []string{"abcdef"}, chunks: []string{"abc", "abd"}, want: "abcabd"},
		{name: "longest wins", secrets: []string{"cd", "abcdef"}, chunks: []string{"abcd", "ef"}, want: "[MASKED]"},
		{name: "shorter inside longer", secrets: []string{"abc", "xabcx"}, chunks: []string{"xab", "cx abc"}, want: "[MASKED] [MASKED]"},
		{name: "two secrets", secrets: []string{"one-secret", "two-secret"}, chunks: []string{"one-sec", "rettwo-", "secret!"}, want: "[MASKED][MASKED]!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			m := NewMasker(&out, tc.secrets)
			for _, c := range tc.chunks {
				n, err := m.Write([]byte(c))
				require.NoError(t, err)
				require.Equal(t, len(c), n)
			}
			require.NoError(t, m.Close())
			require.Equal(t, tc.want, out.String())
		})
	}
}

// TestMaskerRandomSplits checks that any split of a stream masks like a
// single write.
func TestMaskerRandomSplits(t *testing.T) {
	secrets := []string{"glcbt-64_JobToken", "hunter2hunter2", "Token"}
	var in strings.Builder
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		switch r.IntN(4) {
		case 0:
			in.WriteString(secrets[r.IntN(len(secrets))])
		default:
			in.WriteString("lorem ipsum glcbt hunter ")
		}
	}
	want := in.String()
	for _, s := range secrets {
		want = strings.ReplaceAll(want, s, maskText)
	}
	for trial := range 50 {
		var out bytes.Buffer
		m := NewMasker(&out, secrets)
		data := []byte(in.String())
		for len(data) > 0 {
			n := min(len(data), 1+r.IntN(40))
			_, err := m.Write(data[:n])
			require.NoError(t, err)
			data = data[n:]
		}
		require.NoError(t, m.Close())
		require.Equal(t, want, out.String(), "trial %d", trial)
	}
}

func BenchmarkMasking(b *testing.B) {
	chunk := bytes.Repeat([]byte("compiling package foo/bar/baz with token-ish text abcdefgh\n"), 1100)
	m := NewMasker(io.Discard, []string{"glcbt-64_Fake1JobTokenValue2", "s3cr3t-password", "another-masked-value-123"})
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for b.Loop() {
		_, _ = m.Write(chunk)
	}
}
