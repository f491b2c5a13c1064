package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// fixtureSecrets lists every secret value of the good fixtures.
var fixtureSecrets = []string{
	// heptapod-single-orga.good.toml
	"fixtRunnerTok1single", "fixt-cc-token-single-0000-aaaaaaaaaaaa",
	"fixtS3AccessKeySingle", "fixtS3SecretKeySingleValue0123456789abcd",
	// heptapod-multi-tenant.good.toml
	"fixtRunnerTok2multi", "fixtNamespaceAttrTok2",
	// all-keys.good.toml
	"allkeysRunnerTokenClever", "allkeysCleverTokenValue", "allkeysNamespaceAttrToken",
	"allkeysTraceWatchToken", "allkeysS3AccessKey", "allkeysS3SecretKey",
	"allkeysS3SessionToken", "allkeysGCSPrivateKey", "allkeysAzureAccountKey",
	"allkeysEnvTokenValue", "allkeysRunnerTokenDocker", "allkeysRunnerTokenProcess",
}

// TestElideSecrets dumps every loaded fixture in every way a config may be
// printed and checks that no secret value appears.
func TestElideSecrets(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.toml")
	require.NoError(t, err)
	var cfgs []*Config
	for _, f := range files {
		cfg, err := Load(f)
		require.NoError(t, err)
		cfgs = append(cfgs, cfg)
	}

	dumps := map[string]func(t *testing.T, c *Config) string{
		"%v":     func(_ *testing.T, c *Config) string { return fmt.Sprintf("%v", c) },
		"%+v":    func(_ *testing.T, c *Config) string { return fmt.Sprintf("%+v", c) },
		"%#v":    func(_ *testing.T, c *Config) string { return fmt.Sprintf("%#v", c) },
		"Sprint": func(_ *testing.T, c *Config) string { return fmt.Sprint(c, *c) },
		"runners %+v": func(_ *testing.T, c *Config) string {
			return fmt.Sprintf("%+v %+v", c.Runners, c.Runners[0].TraceWatch)
		},
		"json": func(t *testing.T, c *Config) string {
			b, err := json.Marshal(c)
			require.NoError(t, err)
			return string(b)
		},
		"toml": func(t *testing.T, c *Config) string {
			var buf bytes.Buffer
			require.NoError(t, toml.NewEncoder(&buf).Encode(c))
			return buf.String()
		},
		"redacted json": func(t *testing.T, c *Config) string {
			b, err := json.Marshal(c.Redacted())
			require.NoError(t, err)
			return string(b)
		},
		"logrus text": func(_ *testing.T, c *Config) string {
			return logDump(&logrus.TextFormatter{DisableTimestamp: true}, c)
		},
		"logrus json": func(_ *testing.T, c *Config) string {
			return logDump(&logrus.JSONFormatter{}, c)
		},
	}
	for name, dump := range dumps {
		t.Run(name, func(t *testing.T) {
			for _, cfg := range cfgs {
				out := dump(t, cfg)
				require.Contains(t, out, Masked)
				for _, s := range fixtureSecrets {
					require.NotContains(t, out, s)
				}
			}
		})
	}

	// The forwarded table does carry the real values: the test can fail.
	all, err := Load("testdata/all-keys.good.toml")
	require.NoError(t, err)
	require.Contains(t, fmt.Sprint(all.Runners[0].InnerConfig()), "allkeysS3SecretKey")
}

func logDump(f logrus.Formatter, c *Config) string {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(f)
	l.WithField("config", c).WithField("runner", c.Runners[0]).
		WithField("token", c.Runners[0].Token).WithField("extra", c.Runners[0].Extra).Info("loaded")
	return buf.String()
}

func TestSecretFormatting(t *testing.T) {
	const v = "s3cr3t-value"
	s := Secret(v)
	formats := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v", "%T"}
	for _, f := range formats {
		t.Run(f, func(t *testing.T) {
			out := fmt.Sprintf(f, s)
			require.NotContains(t, out, v)
			require.NotContains(t, out, fmt.Sprintf("%x", v))
		})
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"String", s.String(), Masked},
		{"GoString", s.GoString(), `"[MASKED]"`},
		{"%q", fmt.Sprintf("%q", s), `"[MASKED]"`},
		{"%#v", fmt.Sprintf("%#v", s), `"[MASKED]"`},
		{"empty", fmt.Sprintf("%v", Secret("")), ""},
		{"LogValue", s.LogValue(), Masked},
		{"Reveal", s.Reveal(), v},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.got)
		})
	}
	var back Secret
	require.NoError(t, back.UnmarshalText([]byte(v)))
	require.Equal(t, s, back)
	require.True(t, Secret("").IsZero())
}
