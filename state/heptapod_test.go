package state

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden is what a decoded fixture is compared against.
type golden struct {
	File     *File    `json:"file"`
	Warnings []string `json:"warnings"`
}

// TestDecodeFixtures decodes a state file of every released layout (the
// Heptapod PAAS Runner's and ours) and compares with testdata/*.golden.
func TestDecodeFixtures(t *testing.T) {
	runners := map[string]string{"a1b2c3d4": "3fa9c2d17b04", "0123abcd": "9c0ffee12345"}
	fixtures := []string{"heptapod-0.x-clever.json", "heptapod-local-docker.json", "state-v1.json"}
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name))
			require.NoError(t, err)
			f, warnings, err := Decode(data, runners)
			require.NoError(t, err)
			got, err := json.MarshalIndent(golden{File: f, Warnings: warnings}, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			path := filepath.Join("testdata", strings.TrimSuffix(name, ".json")+".golden")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./state -run TestDecodeFixtures -update")
			require.JSONEq(t, string(want), string(got))

			// What we write decodes to the same jobs.
			enc, err := Encode(f)
			require.NoError(t, err)
			again, _, err := Decode(enc, nil)
			require.NoError(t, err)
			require.Equal(t, f.Jobs, again.Jobs)
		})
	}
}

func TestImportHeptapodMapping(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "heptapod-0.x-clever.json"))
	require.NoError(t, err)
	f, warnings, err := ImportHeptapod(data, map[string]string{"a1b2c3d4": "3fa9c2d17b04"})
	require.NoError(t, err)
	byID := map[int64]Job{}
	for _, j := range f.Jobs {
		byID[j.JobID] = j
	}
	require.Len(t, f.Jobs, 8, "launched 3 + to_decommission 2 (one also standby, kept once) + pending 3")
	require.Len(t, byID, 8)

	tests := map[string]struct {
		id           int64
		runner       string
		phase        Phase
		weight       float64
		resourceName string
		payload      bool
	}{
		"launched with weight":    {1001, "3fa9c2d17b04", PhaseRunning, 2.378414230005442, "hpd-job-a1b2c3d4-1001", false},
		"launched without weight": {1002, "3fa9c2d17b04", PhaseRunning, HeptapodMissingWeight, "hpd-job-a1b2c3d4-1002", false},
		"unknown runner kept":     {2001, "heptapod:glrt-xyz", PhaseRunning, 2.378414230005442, "hpd-job-glrt-xyz-2001", false},
		"to decommission":         {990, "3fa9c2d17b04", PhaseDecommissioning, 2.378414230005442, "hpd-job-a1b2c3d4-990", false},
		"standby":                 {991, "3fa9c2d17b04", PhaseDecommissioning, 1, "hpd-job-a1b2c3d4-991", false},
		"pending no resource":     {1003, "3fa9c2d17b04", PhasePending, 0, "hpd-job-a1b2c3d4-1003", true},
		"pending provisioned":     {1004, "3fa9c2d17b04", PhaseProvisioned, 2.378414230005442, "hpd-job-a1b2c3d4-1004", true},
		"pending launched":        {1005, "3fa9c2d17b04", PhaseLaunched, 2.378414230005442, "hpd-job-a1b2c3d4-1005", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j, ok := byID[tc.id]
			require.True(t, ok)
			require.Equal(t, tc.runner, j.Runner)
			require.Equal(t, tc.phase, j.Phase)
			require.InDelta(t, tc.weight, j.Weight, 1e-9)
			require.Equal(t, tc.resourceName, j.ResourceName)
			require.Equal(t, tc.payload, j.Payload != nil)
			require.NotEmpty(t, j.Token)
		})
	}
	require.Equal(t, int64(2048), byID[1001].TraceOffset)
	require.Equal(t, int64(42), byID[1003].ProjectID)
	require.JSONEq(t, `{"id":"app_11111111-1111-1111-1111-111111111111","gitlab_namespace":"acme","weight":2.378414230005442,"launched":true,"deploy_url":"https://push-n3-par-clevercloud-customers.services.clever-cloud.com/app_11111111-1111-1111-1111-111111111111.git"}`,
		string(byID[1001].Resource), "the resource dump is kept as is")
	require.Len(t, warnings, 2, "one unknown runner, one missing weight: %q", warnings)
}

func TestImportHeptapodLocalDocker(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "heptapod-local-docker.json"))
	require.NoError(t, err)
	f, warnings, err := ImportHeptapod(data, map[string]string{"0123abcd": "9c0ffee12345"})
	require.NoError(t, err)
	require.Empty(t, warnings)
	require.Len(t, f.Jobs, 3)
	for _, j := range f.Jobs {
		switch j.JobID {
		case 7:
			require.Equal(t, PhaseRunning, j.Phase)
			require.Equal(t, "hpd-job-0123abcd-7", j.ResourceName)
			require.Equal(t, "hpd-job-0123abcd-7", ResourceID(j.Resource))
			require.InDelta(t, 1.0, j.Weight, 0)
		case 8:
			require.Equal(t, PhaseProvisioned, j.Phase)
		case 9:
			require.Equal(t, PhasePending, j.Phase)
			require.InDelta(t, 1.0, j.ExpectedWeight, 0, "missing expected_weight defaults to 1")
		}
	}
}

func TestDecodeDuplicateKeepsLast(t *testing.T) {
	data := []byte(`{"version":1,"jobs":[
		{"runner":"r","job_id":1,"token":"t","phase":"pending","resource_name":"n"},
		{"runner":"r","job_id":1,"token":"t","phase":"running","resource_name":"n"}]}`)
	f, warnings, err := Decode(data, nil)
	require.NoError(t, err)
	require.Len(t, f.Jobs, 1)
	require.Equal(t, PhaseRunning, f.Jobs[0].Phase)
	require.Len(t, warnings, 1)
}
