package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testJob(runner string, id int64) Job {
	return Job{
		Runner: runner, JobID: id, Token: fmt.Sprintf("job-token-%d", id),
		ExpectedWeight: 1, Phase: PhasePending,
		ResourceName: fmt.Sprintf("hpd-job-%s-%d", runner, id),
		AcquiredAt:   time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
}

func openTest(t *testing.T, path string, opts ...Option) (*FileStore, *test.Hook) {
	t.Helper()
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	s, err := Open(path, log, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.WithoutCancel(t.Context())) })
	return s, hook
}

// withWriteFile replaces the atomic write (failure injection, counting).
func withWriteFile(f func(path string, data []byte) error) Option {
	return func(o *options) { o.writeFile = f }
}

func TestFileStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, _ := openTest(t, path)
	want := []Job{testJob("a", 1), testJob("b", 2)}
	want[1].Resource = json.RawMessage(`{"id":"app_2","weight":2.37}`)
	for _, j := range want {
		s.Put(j)
	}
	require.NoError(t, s.Close(t.Context()))

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), `"version":1`)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	s2, _ := openTest(t, path)
	f, err := s2.Load()
	require.NoError(t, err)
	require.Equal(t, want, f.Jobs)
	require.False(t, f.SavedAt.IsZero())
	_, err = os.Stat(path)
	require.NoError(t, err, "the state file is never deleted on load")
}

func TestOpenRestrictsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"version":1,"jobs":[]}`), 0o644))
	openTest(t, path)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())
}

func TestOpenRefusesBadFiles(t *testing.T) {
	tests := map[string]struct {
		content string
		want    error
	}{
		"truncated":      {`{"version":1,"jobs":[{"runner":"a","job_id":1,`, ErrCorrupt},
		"garbage":        {"\x00\x01binary", ErrCorrupt},
		"empty":          {"", ErrCorrupt},
		"blank":          {" \n", ErrCorrupt},
		"array":          {`[1,2]`, ErrCorrupt},
		"unknown layout": {`{"foo":1}`, ErrCorrupt},
		"bad version":    {`{"version":"one"}`, ErrCorrupt},
		"zero version":   {`{"version":0,"jobs":[]}`, ErrCorrupt},
		"bad jobs":       {`{"version":1,"jobs":{}}`, ErrCorrupt},
		"future version": {`{"version":2,"jobs":[]}`, ErrUnsupportedVersion},
		"future layout":  {`{"version":3,"jobs":{"by_runner":{}}}`, ErrUnsupportedVersion},
		"bad heptapod":   {`{"launched":{},"pending":[]}`, ErrCorrupt},
		"bad pending":    {`{"launched":[],"pending":[[{"job_id":1}]]}`, ErrCorrupt},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			log, _ := test.NewNullLogger()
			s, err := Open(path, log)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, s)
			require.ErrorContains(t, err, path)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, []byte(tc.content), got, "a bad state file is never overwritten")
			entries, err := os.ReadDir(filepath.Dir(path))
			require.NoError(t, err)
			require.Len(t, entries, 1)
		})
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	log, _ := test.NewNullLogger()
	_, err := Open(filepath.Join(t.TempDir(), "nope", "state.json"), log)
	require.ErrorContains(t, err, "nope")
}

// blockingWriter blocks its first write until released.
type blockingWriter struct {
	started  chan struct{}
	release  chan struct{}
	once     sync.Once
	writes   atomic.Int64
	failures atomic.Int64 // number of next writes to fail
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
}

var errDiskFull = errors.New("no space left on device")

func (w *blockingWriter) write(path string, data []byte) error {
	first := false
	w.once.Do(func() { first = true })
	if first {
		close(w.started)
		<-w.release
	}
	w.writes.Add(1)
	if w.failures.Load() > 0 {
		w.failures.Add(-1)
		return errDiskFull
	}
	return writeFileAtomic(path, data)
}

func TestFileStoreCoalescesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	w := newBlockingWriter()
	s, _ := openTest(t, path, withWriteFile(w.write))
	s.Put(testJob("r", 0))
	<-w.started // first write in flight, holding job 0 only
	for i := range int64(10_000) {
		s.Put(testJob("r", i))
	}
	close(w.release)
	require.NoError(t, s.Sync(t.Context()))
	require.Equal(t, int64(2), w.writes.Load(), "10k puts during one write give one more write")

	f, _, err := ReadFile(path, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, 10_000)
	loaded, err := s.Load()
	require.NoError(t, err)
	require.Equal(t, loaded.Jobs, f.Jobs, "the 10k jobs, encoded in parallel, are written as they are held")
}

func TestFileStoreSyncWaitsForDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	w := newBlockingWriter()
	s, _ := openTest(t, path, withWriteFile(w.write))
	s.Put(testJob("r", 1))
	<-w.started
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.Sync(ctx), context.DeadlineExceeded, "the write is still blocked")
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
	close(w.release)
	require.NoError(t, s.Sync(t.Context()))
	f, _, err := ReadFile(path, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, 1)
}

func TestFileStoreWriteFailureSurfacedAndRetried(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	w := newBlockingWriter()
	w.failures.Store(1 << 30)
	s, hook := openTest(t, path, withWriteFile(w.write), withRetryBackoff(time.Millisecond, 2*time.Millisecond))
	s.Put(testJob("r", 1))
	<-w.started
	close(w.release)
	err := s.Sync(t.Context())
	require.ErrorIs(t, err, errDiskFull, "Sync reports the failed write")
	require.ErrorIs(t, s.Sync(t.Context()), errDiskFull, "still failing")

	// The disk recovers: the writer retries on its own and the next Sync
	// succeeds once a retry contains every change.
	w.failures.Store(0)
	require.Eventually(t, func() bool { return s.Sync(t.Context()) == nil }, 10*time.Second, time.Millisecond,
		"the writer retries without a new change")
	s.Put(testJob("r", 2))
	require.NoError(t, s.Sync(t.Context()))
	f, _, err := ReadFile(path, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, 2)

	var logged bool
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && errors.Is(e.Data[logrus.ErrorKey].(error), errDiskFull) {
			logged = true
		}
	}
	require.True(t, logged, "write failures are logged")
}

func TestFileStoreCloseReportsUnwritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	w := newBlockingWriter()
	w.failures.Store(1 << 30)
	close(w.release)
	s, _ := openTest(t, path, withWriteFile(w.write), withRetryBackoff(time.Millisecond, time.Millisecond))
	s.Put(testJob("r", 1))
	require.ErrorIs(t, s.Close(t.Context()), errDiskFull)
	require.ErrorIs(t, s.Sync(t.Context()), ErrClosed)
}

func TestFileStoreNoSecretsInFile(t *testing.T) {
	const (
		runnerToken = "glrt-RunnerSecretToken0123"
		cleverToken = "clever-orga-token-deadbeef"
		jobToken    = "glcbt-64_jobtoken"
	)
	// A Clever-like resource: credentials are resolved from the config and
	// are not part of its dump.
	type resource struct {
		ID        string  `json:"id"`
		Weight    float64 `json:"weight"`
		Launched  bool    `json:"launched"`
		DeployURL string  `json:"deploy_url"`
		token     string
	}
	dump := func(r resource) json.RawMessage {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		return b
	}
	path := filepath.Join(t.TempDir(), "state.json")
	s, hook := openTest(t, path)
	for i := range int64(3) {
		j := testJob("3fa9c2d17b04", i)
		j.Token = jobToken
		j.Payload = json.RawMessage(`{"id":1,"token":"` + jobToken + `"}`)
		j.Resource = dump(resource{ID: "app_x", Weight: 2.37, DeployURL: "https://push.example/app_x.git", token: cleverToken})
		s.Put(j)
	}
	require.NoError(t, s.Close(t.Context()))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), jobToken, "job tokens are needed after a restart")
	for _, secret := range []string{runnerToken, cleverToken} {
		require.NotContains(t, string(data), secret)
	}
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		require.NoError(t, err)
		require.NotContains(t, line, jobToken, "job tokens are never logged")
	}
}

func TestOpenImportsHeptapodFile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "heptapod-0.x-clever.json"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, src, 0o644))
	s, _ := openTest(t, path, WithHeptapodRunners(map[string]string{"a1b2c3d4": "3fa9c2d17b04"}))
	require.NotEmpty(t, s.Warnings())
	f, err := s.Load()
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))

	backup, err := os.ReadFile(path + ".heptapod-backup")
	require.NoError(t, err)
	require.Equal(t, src, backup, "the original is kept byte for byte")
	st, err := os.Stat(path + ".heptapod-backup")
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())

	converted, _, err := ReadFile(path, nil)
	require.NoError(t, err, "the file was rewritten in our format")
	require.Equal(t, f.Jobs, converted.Jobs)
	require.True(t, bytes.Contains(mustRead(t, path), []byte(`"version":1`)))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestFileStoreGroupCommit: Syncs waiting concurrently are all released by
// the one write that contains their changes, not one write each.
func TestFileStoreGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	w := newBlockingWriter()
	s, _ := openTest(t, path, withWriteFile(w.write))
	s.Put(testJob("r", 0))
	<-w.started // first write in flight, holding job 0 only
	const syncers = 50
	errs := make(chan error, syncers)
	for i := range int64(syncers) {
		go func() {
			s.Put(testJob("r", i+1))
			errs <- s.Sync(t.Context())
		}()
	}
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.gen == syncers+1
	}, 10*time.Second, time.Millisecond, "every Put recorded")
	close(w.release)
	for range syncers {
		require.NoError(t, <-errs)
	}
	require.Equal(t, int64(2), w.writes.Load(), "one write after the blocked one serves the 50 Syncs")
	f, _, err := ReadFile(path, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, syncers+1)
}
