package statetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/state"
)

// NewStore returns a fresh, empty store; the suite closes it.
type NewStore func(t *testing.T) state.Store

// Job returns a plausible tracked job of runner with id, for tests.
func Job(runner string, id int64) state.Job {
	return state.Job{
		Runner:         runner,
		JobID:          id,
		Token:          fmt.Sprintf("job-token-%d", id),
		ProjectID:      7,
		Flavor:         "M",
		ExpectedWeight: 2.37,
		Phase:          state.PhasePending,
		ResourceName:   fmt.Sprintf("hpd-job-%s-%d", runner, id),
		Payload:        json.RawMessage(fmt.Sprintf(`{"id":%d,"token":"job-token-%d"}`, id, id)),
		AcquiredAt:     time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
}

// Run runs the Store contract against stores built by newStore.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	open := func(t *testing.T) state.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() { require.NoError(t, s.Close(context.WithoutCancel(t.Context()))) })
		return s
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s state.Store)
	}{
		{"EmptyLoad", testEmptyLoad},
		{"PutLoad", testPutLoad},
		{"PutReplaces", testPutReplaces},
		{"Delete", testDelete},
		{"Sorted", testSorted},
		{"Isolation", testIsolation},
		{"SyncCanceled", testSyncCanceled},
		{"Concurrent", testConcurrent},
		{"CloseIdempotent", testCloseIdempotent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func key(runner string, id int64) state.Key { return state.Key{Runner: runner, JobID: id} }

func load(t *testing.T, s state.Store) *state.File {
	t.Helper()
	f, err := s.Load()
	require.NoError(t, err)
	require.Equal(t, state.Version, f.Version)
	return f
}

func testEmptyLoad(t *testing.T, s state.Store) {
	require.Empty(t, load(t, s).Jobs)
	require.NoError(t, s.Sync(t.Context()))
}

func testPutLoad(t *testing.T, s state.Store) {
	j := Job("3fa9c2d17b04", 42)
	j.Resource = json.RawMessage(`{"id":"app_1","weight":2.37}`)
	j.PendingFailure = &state.Failure{Reason: "runner_system_failure", Message: "boom"}
	s.Put(j)
	require.NoError(t, s.Sync(t.Context()))
	require.Equal(t, []state.Job{j}, load(t, s).Jobs)
}

func testPutReplaces(t *testing.T, s state.Store) {
	j := Job("r", 1)
	s.Put(j)
	j.Phase = state.PhaseRunning
	j.TraceOffset = 120
	s.Put(j)
	require.NoError(t, s.Sync(t.Context()))
	require.Equal(t, []state.Job{j}, load(t, s).Jobs)
}

func testDelete(t *testing.T, s state.Store) {
	s.Put(Job("r", 1))
	s.Put(Job("r", 2))
	s.Delete(state.Key{Runner: "r", JobID: 1})
	s.Delete(state.Key{Runner: "r", JobID: 99}) // unknown: no-op
	s.Delete(state.Key{Runner: "other", JobID: 2})
	require.NoError(t, s.Sync(t.Context()))
	require.Equal(t, []state.Job{Job("r", 2)}, load(t, s).Jobs)
}

func testSorted(t *testing.T, s state.Store) {
	for _, k := range []state.Key{key("b", 1), key("a", 10), key("a", 2), key("b", 0)} {
		s.Put(Job(k.Runner, k.JobID))
	}
	var keys []state.Key
	for _, j := range load(t, s).Jobs {
		keys = append(keys, j.Key())
	}
	require.Equal(t, []state.Key{key("a", 2), key("a", 10), key("b", 0), key("b", 1)}, keys)
}

func testIsolation(t *testing.T, s state.Store) {
	j := Job("r", 1)
	j.Resource = json.RawMessage(`{"id":"x"}`)
	s.Put(j)
	j.Resource[2] = 'X' // the caller's slice changes after Put
	got := load(t, s).Jobs
	require.JSONEq(t, `{"id":"x"}`, string(got[0].Resource))
	got[0].Payload[0] = '[' // the loader's copy changes
	require.JSONEq(t, string(Job("r", 1).Payload), string(load(t, s).Jobs[0].Payload))
}

func testSyncCanceled(t *testing.T, s state.Store) {
	s.Put(Job("r", 1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Sync(ctx); err != nil {
		require.ErrorIs(t, err, context.Canceled)
	}
	require.NoError(t, s.Sync(t.Context()))
}

func testConcurrent(t *testing.T, s state.Store) {
	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			runner := fmt.Sprintf("r%d", w)
			for i := range int64(perWorker) {
				s.Put(Job(runner, i))
				if i%2 == 1 {
					s.Delete(state.Key{Runner: runner, JobID: i})
				}
				if i%50 == 0 {
					errs <- s.Sync(t.Context())
					_, err := s.Load()
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, s.Sync(t.Context()))
	require.Len(t, load(t, s).Jobs, workers*perWorker/2)
}

func testCloseIdempotent(t *testing.T, s state.Store) {
	s.Put(Job("r", 1))
	require.NoError(t, s.Close(t.Context()))
	require.NoError(t, s.Close(t.Context()))
	s.Put(Job("r", 2)) // ignored after Close
	require.Equal(t, []state.Job{Job("r", 1)}, load(t, s).Jobs)
}
