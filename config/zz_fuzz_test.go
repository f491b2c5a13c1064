package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
)

// FuzzParse feeds arbitrary TOML to the loader: Parse and Validate never
// panic, Parse either fails or returns a configuration, and a Secret never
// prints its value. Seeds: every file of testdata/ and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	require.NoError(f, err)
	for _, name := range files {
		data, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data)
		if err != nil {
			require.Nil(t, cfg)
			return
		}
		require.NotNil(t, cfg)
		_ = cfg.Validate()
		_ = cfg.Warnings()
		_ = cfg.Notices()
		for i := range cfg.Runners {
			r := &cfg.Runners[i]
			_ = r.ShortID()
			if tok := r.Token.Reveal(); len(tok) >= 8 && !strings.Contains(config.Masked, tok) {
				require.NotContains(t, r.Token.String(), tok, "Secret.String reveals the token")
			}
		}
	})
}
