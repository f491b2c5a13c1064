package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/dispatcher"
)

type snapFunc func() dispatcher.Snapshot

func (f snapFunc) Snapshot() dispatcher.Snapshot { return f() }

func TestDumpTextRedactsAndCounts(t *testing.T) {
	reg, m, err := newDaemonMetrics()
	require.NoError(t, err)
	m.JobAcquired("r1", "M")
	m.LaunchFailed("r1", "runner_system_failure")
	snap := dispatcher.Snapshot{
		Jobs:    []dispatcher.JobView{{Runner: "r1", JobID: 7, Phase: "running", LastError: "push https://app:cc-secret-value@push.example/x.git: 403"}},
		Runners: []dispatcher.RunnerView{{Name: "r1"}},
	}
	cases := []struct {
		name     string
		withRegs bool
		counters int
	}{
		{name: "with counters", withRegs: true, counters: 3}, // acquisitions, launch failures, poll cycles
		{name: "without registry", withRegs: false, counters: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var text string
			var err error
			if tc.withRegs {
				text, err = dumpText(snapFunc(func() dispatcher.Snapshot { return snap }), reg)
			} else {
				text, err = dumpText(snapFunc(func() dispatcher.Snapshot { return snap }), nil)
			}
			require.NoError(t, err)
			require.NotContains(t, text, "cc-secret-value")
			var rep dumpReport
			require.NoError(t, json.Unmarshal([]byte(text), &rep))
			require.Len(t, rep.Snapshot.Jobs, 1)
			require.Len(t, rep.Counters, tc.counters)
			if tc.withRegs {
				require.InDelta(t, 1, rep.Counters[`paas_runner_job_acquisitions_total{flavor="M",runner="r1"}`], 0)
			}
		})
	}
	require.Contains(t, snap.Jobs[0].LastError, "cc-secret-value", "the snapshot itself is untouched")
}
