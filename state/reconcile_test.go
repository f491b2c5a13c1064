package state

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlan(t *testing.T) {
	const r1, r2 = "3fa9c2d17b04", "9c0ffee12345"
	job := func(runner string, id int64, phase Phase, resourceID string) Job {
		j := testJob(runner, id)
		j.Phase = phase
		if resourceID != "" {
			j.Resource = json.RawMessage(`{"id":"` + resourceID + `"}`)
		}
		return j
	}
	imported := job(r1, 9, PhaseRunning, "app_9")
	imported.ResourceName = "hpd-job-a1b2c3d4-9"
	localDocker := job(r1, 10, PhaseRunning, "")
	localDocker.Resource = json.RawMessage(`"img-10"`)

	tests := map[string]struct {
		tracked []Job
		listed  map[string][]Listed
		keep    bool
		want    Reconciliation
	}{
		"nothing": {},
		"all matched by name": {
			tracked: []Job{job(r1, 1, PhaseRunning, "app_1")},
			listed:  map[string][]Listed{r1: {{ID: "other-id", Name: "hpd-job-" + r1 + "-1"}}},
		},
		"matched by id only": {
			tracked: []Job{job(r1, 1, PhaseRunning, "app_1")},
			listed:  map[string][]Listed{r1: {{ID: "app_1", Name: "renamed"}}},
		},
		"orphan": {
			tracked: []Job{job(r1, 1, PhaseRunning, "app_1")},
			listed: map[string][]Listed{r1: {
				{ID: "app_1", Name: "hpd-job-" + r1 + "-1"},
				{ID: "app_2", Name: "hpd-job-" + r1 + "-2"},
			}},
			want: Reconciliation{Orphans: []Orphan{{Runner: r1, ID: "app_2", Name: "hpd-job-" + r1 + "-2"}}},
		},
		"orphan kept": {
			listed: map[string][]Listed{r1: {{ID: "app_2", Name: "hpd-job-" + r1 + "-2"}}},
			keep:   true,
			want:   Reconciliation{KeptOrphans: []Orphan{{Runner: r1, ID: "app_2", Name: "hpd-job-" + r1 + "-2"}}},
		},
		"pending intent adopted, not orphan": {
			tracked: []Job{job(r1, 3, PhasePending, "")},
			listed:  map[string][]Listed{r1: {{ID: "app_3", Name: "hpd-job-" + r1 + "-3"}}},
			want:    Reconciliation{Adopted: []Adoption{{Key: Key{Runner: r1, JobID: 3}, ID: "app_3", Name: "hpd-job-" + r1 + "-3"}}},
		},
		"pending without resource not listed": {
			tracked: []Job{job(r1, 3, PhasePending, "")},
			listed:  map[string][]Listed{r1: {}},
		},
		"vanished": {
			tracked: []Job{
				job(r1, 4, PhaseRunning, "app_4"),
				job(r1, 5, PhaseDecommissioning, "app_5"),
				job(r1, 6, PhaseProvisioned, "app_6"),
			},
			listed: map[string][]Listed{r1: {{ID: "app_6", Name: "hpd-job-" + r1 + "-6"}}},
			want:   Reconciliation{Vanished: []Key{{Runner: r1, JobID: 4}, {Runner: r1, JobID: 5}}},
		},
		"runner not listed is not judged": {
			tracked: []Job{job(r2, 4, PhaseRunning, "app_4")},
			listed:  map[string][]Listed{r1: {}},
		},
		"imported heptapod name is left to Check": {
			tracked: []Job{imported},
			listed:  map[string][]Listed{r1: {}},
		},
		"bare string dump matched by id": {
			tracked: []Job{localDocker},
			listed:  map[string][]Listed{r1: {{ID: "img-10", Name: "x"}}},
		},
		"resource of another runner's job is not an orphan": {
			tracked: []Job{job(r2, 7, PhaseRunning, "app_7")},
			listed:  map[string][]Listed{r1: {{ID: "app_7", Name: "hpd-job-" + r2 + "-7"}}},
		},
		"orphans sorted by runner": {
			listed: map[string][]Listed{
				r2: {{ID: "b", Name: "hpd-job-" + r2 + "-1"}},
				r1: {{ID: "a", Name: "hpd-job-" + r1 + "-1"}},
			},
			want: Reconciliation{Orphans: []Orphan{
				{Runner: r1, ID: "a", Name: "hpd-job-" + r1 + "-1"},
				{Runner: r2, ID: "b", Name: "hpd-job-" + r2 + "-1"},
			}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, Plan(tc.tracked, tc.listed, tc.keep))
		})
	}
}
