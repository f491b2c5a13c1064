package state

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	require.NoError(b, writeFileAtomic(path, data))
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

// BenchmarkIntentSync100 measures the intent write a launch waits for: 100
// goroutines (launches in flight) each Put a pending job with a 4 KiB
// payload and Sync, over 100 other tracked jobs. It reports the Put+Sync
// latency percentiles and how many Syncs one file write served (group
// commit); ns/op is per Put+Sync.
func BenchmarkIntentSync100(b *testing.B) {
	const inFlight = 100
	log, _ := test.NewNullLogger()
	var writes atomic.Int64
	s, err := Open(filepath.Join(b.TempDir(), "state.json"), log, withWriteFile(func(p string, d []byte) error {
		writes.Add(1)
		return writeFileAtomic(p, d)
	}))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close(context.WithoutCancel(b.Context())) })
	payload := json.RawMessage(`{"id":1,"token":"x","filler":"` + strings.Repeat("a", 4096) + `"}`)
	intent := func(id int64) Job {
		j := testJob("3fa9c2d17b04", id)
		j.Payload = payload
		return j
	}
	for i := range int64(inFlight) {
		s.Put(intent(1_000_000 + i))
	}
	require.NoError(b, s.Sync(b.Context()))
	writes.Store(0)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		next atomic.Int64
	)
	b.SetParallelism((inFlight + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			id := next.Add(1)
			start := time.Now()
			s.Put(intent(id))
			if err := s.Sync(b.Context()); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
			s.Delete(Key{Runner: "3fa9c2d17b04", JobID: id})
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(lat))/float64(max(writes.Load(), 1)), "syncs/write")
	}
}
