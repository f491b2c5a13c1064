package state_test

import (
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/state"
	"gitlab.com/paas-runner/paas-runner/state/statetest"
)

func TestStoreContract(t *testing.T) {
	impls := map[string]statetest.NewStore{
		"memory": func(*testing.T) state.Store { return state.NewMemory() },
		"file": func(t *testing.T) state.Store {
			log, _ := test.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			s, err := state.Open(filepath.Join(t.TempDir(), "state.json"), log)
			require.NoError(t, err)
			return s
		},
	}
	for name, newStore := range impls {
		t.Run(name, func(t *testing.T) { statetest.Run(t, newStore) })
	}
}
