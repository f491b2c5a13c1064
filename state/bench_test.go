package state

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

func benchJob(i int64) Job {
	j := testJob("3fa9c2d17b04", i)
	j.Phase = PhaseRunning
	j.Resource = json.RawMessage(fmt.Sprintf(`{"id":"app_%08d-0000-4000-8000-000000000000","weight":2.378414230005442,"launched":true,"deploy_url":"https://push.example/app_%d.git"}`, i, i))
	return j
}

func benchmarkCheckpoint(b *testing.B, n int64) {
	log, _ := test.NewNullLogger()
	log.SetLevel(logrus.WarnLevel)
	s, err := Open(filepath.Join(b.TempDir(), "state.json"), log)
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close(b.Context()) })
	b.ReportAllocs()
	for b.Loop() {
		for i := range n {
			s.Put(benchJob(i))
		}
		require.NoError(b, s.Sync(b.Context()))
	}
}

// BenchmarkCheckpoint1k measures Put of 1k jobs followed by Sync.
func BenchmarkCheckpoint1k(b *testing.B) { benchmarkCheckpoint(b, 1_000) }

// BenchmarkCheckpoint10k measures Put of 10k jobs followed by Sync.
func BenchmarkCheckpoint10k(b *testing.B) { benchmarkCheckpoint(b, 10_000) }

// BenchmarkCheckpoint10kChanged100 measures the checkpoint of a runner
// tracking 10k jobs of which 100 changed since the last write: Put of
// 100 jobs followed by Sync. The file written still holds the 10k jobs.
func BenchmarkCheckpoint10kChanged100(b *testing.B) {
	log, _ := test.NewNullLogger()
	log.SetLevel(logrus.WarnLevel)
	s, err := Open(filepath.Join(b.TempDir(), "state.json"), log)
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close(b.Context()) })
	for i := range int64(10_000) {
		s.Put(benchJob(i))
	}
	require.NoError(b, s.Sync(b.Context()))
	b.ReportAllocs()
	var round int64
	for b.Loop() {
		for i := range int64(100) {
			j := benchJob((round*100 + i) % 10_000)
			j.TraceOffset = round
			s.Put(j)
		}
		require.NoError(b, s.Sync(b.Context()))
		round++
	}
}

func benchmarkRestore(b *testing.B, n int64) {
	path := filepath.Join(b.TempDir(), "state.json")
	jobs := make([]Job, 0, n)
	for i := range n {
		jobs = append(jobs, benchJob(i))
	}
	data, err := Encode(&File{Jobs: jobs})
	require.NoError(b, err)
	require.NoError(b, WriteFileAtomic(path, data))
	log, _ := test.NewNullLogger()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(path, log)
		require.NoError(b, err)
		f, err := s.Load()
		require.NoError(b, err)
		require.Len(b, f.Jobs, int(n))
		require.NoError(b, s.Close(b.Context()))
	}
}

// BenchmarkRestore1k measures opening a state file of 1k jobs and loading it.
func BenchmarkRestore1k(b *testing.B) { benchmarkRestore(b, 1_000) }

// BenchmarkRestore10k measures opening a state file of 10k jobs and loading it.
func BenchmarkRestore10k(b *testing.B) { benchmarkRestore(b, 10_000) }
