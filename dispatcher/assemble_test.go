package dispatcher

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/state"
)

func assembleConfig(stateFile string) *config.Config {
	cfg := config.Default()
	cfg.StateFile = stateFile
	cfg.QuotaComputation = &config.QuotaComputation{ReferenceRunner: "a", ReferenceFlavor: "M", ReferenceJobsCount: 2}
	r := config.DefaultRunner()
	r.Name, r.URL, r.Token, r.Executor = "a", "https://gitlab.example.com", "glrt-assemble-token", config.ExecutorFake
	cfg.Runners = []config.Runner{r}
	return cfg
}

func TestAssemble(t *testing.T) {
	t.Run("memory store warns loudly", func(t *testing.T) {
		log, hook := test.NewNullLogger()
		d, cleanup, err := Assemble(assembleConfig(""), log, AssembleOptions{})
		require.NoError(t, err)
		require.NotNil(t, d)
		require.NoError(t, cleanup(t.Context()))
		var warned bool
		for _, e := range hook.AllEntries() {
			warned = warned || (e.Level == logrus.WarnLevel && strings.Contains(e.Message, "state_file") && strings.Contains(e.Message, "LEAKS"))
		}
		require.True(t, warned, "a loud warning without state_file")
	})
	t.Run("state file is locked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		log, _ := test.NewNullLogger()
		_, cleanup, err := Assemble(assembleConfig(path), log, AssembleOptions{})
		require.NoError(t, err)
		_, _, err = Assemble(assembleConfig(path), log, AssembleOptions{})
		require.ErrorIs(t, err, state.ErrLocked)
		require.NoError(t, cleanup(t.Context()))
		_, cleanup, err = Assemble(assembleConfig(path), log, AssembleOptions{})
		require.NoError(t, err, "lock released by cleanup")
		require.NoError(t, cleanup(t.Context()))
	})
	t.Run("unknown executor", func(t *testing.T) {
		cfg := assembleConfig("")
		cfg.Runners[0].Executor = "nope"
		log, _ := test.NewNullLogger()
		_, _, err := Assemble(cfg, log, AssembleOptions{})
		require.ErrorContains(t, err, `unknown executor "nope"`)
	})
}
