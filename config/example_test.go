package config

import (
	"os"
	"reflect"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExampleDocumentsEveryKey keeps config.toml.example complete: every key
// of every config type must appear in it, set or commented out.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.toml.example")
	require.NoError(t, err)
	types := []reflect.Type{
		reflect.TypeFor[Config](), reflect.TypeFor[Runner](), reflect.TypeFor[QuotaComputation](),
		reflect.TypeFor[TraceWatch](), reflect.TypeFor[Flavor](),
	}
	for _, typ := range types {
		for key := range tomlKeys(typ) {
			t.Run(typ.Name()+"."+key, func(t *testing.T) {
				re := regexp.MustCompile(`(?m)^[ #]*(\[+(runners\.)?)?` + regexp.QuoteMeta(key) + `( =|[.\]])`)
				require.Regexp(t, re, string(data))
			})
		}
	}

	cfg, err := LoadAndValidate("../config.toml.example")
	require.NoError(t, err)
	require.Len(t, cfg.Runners, 1)
}
