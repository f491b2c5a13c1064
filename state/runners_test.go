package state

import (
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
)

func TestHeptapodRunners(t *testing.T) {
	a := config.Runner{URL: "https://a.example", Token: "a1b2c3d4e5f6"}
	b := config.Runner{URL: "https://a.example", Token: "glrt-AAAAAAAAAA"}
	c := config.Runner{URL: "https://a.example", Token: "glrt-AAABBBBBBB"} // same token[:8] as b
	tests := map[string]struct {
		runners []config.Runner
		want    map[string]string
	}{
		"none":       {nil, map[string]string{}},
		"distinct":   {[]config.Runner{a, b}, map[string]string{"a1b2c3d4": a.ShortID(), "glrt-AAA": b.ShortID()}},
		"ambiguous":  {[]config.Runner{a, b, c}, map[string]string{"a1b2c3d4": a.ShortID()}},
		"same twice": {[]config.Runner{a, a}, map[string]string{"a1b2c3d4": a.ShortID()}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, HeptapodRunners(tc.runners))
		})
	}
}
