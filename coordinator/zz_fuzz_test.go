package coordinator_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
)

// FuzzParseJob feeds arbitrary bytes to the job payload parser: it never
// panics, and an accepted payload has a positive id, a token and keeps the
// raw bytes. Seeds: realistic payloads from gitlabfake and
// testdata/fuzz/FuzzParseJob.
func FuzzParseJob(f *testing.F) {
	gl := gitlabfake.New(gitlabfake.Options{ExternalURL: "https://gitlab.example"})
	for _, spec := range []gitlabfake.JobSpec{
		{},
		{Variables: map[string]string{"CI_CLEVER_CLOUD_FLAVOR": "XL"}, Services: []gitlabfake.Service{{Name: "postgres:16", Alias: "db"}}},
		{Image: "-", Script: []string{"make test", "make lint"}, AfterScript: []string{"echo done"}},
	} {
		f.Add([]byte(gl.Enqueue(spec).Payload))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := coordinator.ParseJob(data)
		if err != nil {
			require.Nil(t, job)
			return
		}
		require.Positive(t, job.ID)
		require.False(t, job.Token.IsZero())
		require.True(t, bytes.Equal(data, job.Raw))
		for _, v := range job.Variables {
			got, ok := job.Variable(v.Key)
			require.True(t, ok)
			_ = got
		}
	})
}

// FuzzParseRange feeds arbitrary Range headers of trace answers to
// ParseRange: it never panics and never returns a negative offset.
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"0-0", "0-1023", "bytes 0-99/100", "", "-", "5-", "99999999999999999999-1"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if n, ok := coordinator.ParseRange(h); ok {
			require.GreaterOrEqual(t, n, int64(0))
		}
	})
}
