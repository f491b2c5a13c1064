package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/internal/fuzzseed"
)

// FuzzParse feeds arbitrary TOML to the loader: Parse and Validate never
// panic, Parse either fails or returns a configuration, and a Secret never
// prints its value. Seeds: every file of testdata/ and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	fuzzseed.AddFiles(f, filepath.Join("testdata", "*.toml"))
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
