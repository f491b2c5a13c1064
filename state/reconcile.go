package state

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Listed is one resource found by an executor's List (a local copy of
// executors.Listed, so that state does not import executors).
type Listed struct {
	ID   string
	Name string
}

// Orphan is a listed resource that no tracked job owns.
type Orphan struct {
	// Runner is the short id of the runner whose executor listed it.
	Runner string
	ID     string
	Name   string
}

// Adoption is a pending job whose resource exists already: it was created
// but the process died before recording it. The dispatcher adopts it
// (Executor.Adopt) instead of provisioning a second one.
type Adoption struct {
	Key  Key
	ID   string
	Name string
}

// Reconciliation is what Plan found.
type Reconciliation struct {
	// Orphans are resources to delete.
	Orphans []Orphan
	// KeptOrphans are orphans left in place because
	// paas_finished_jobs_keep_resources is set; they are reported only.
	KeptOrphans []Orphan
	// Vanished are tracked jobs whose recorded resource is no longer
	// listed. A resource may have been created after the listing was
	// taken: confirm with Executor.Check (Gone) before failing the job.
	Vanished []Key
	// Adopted are pending jobs whose intended resource is listed.
	Adopted []Adoption
}

// Plan compares tracked jobs with the resources each runner's executor
// listed (listed is keyed by runner short id; a runner missing from it is
// not judged, e.g. because its List failed). It is pure.
//
//   - A listed resource is an orphan when no tracked job (of any runner)
//     records its name or its id. Pending jobs record the name of the
//     resource they are about to create, so a resource created by a
//     provisioning call in flight is never an orphan. Take the listing
//     BEFORE the snapshot of tracked jobs for that guarantee to hold.
//   - A tracked job with a recorded resource (any phase but pending) has
//     vanished when its runner was listed, its resource name is one of that
//     runner's names (<prefix><runner>-<job id>: imported Heptapod names
//     are not listed by our executors and are left to Executor.Check) and
//     neither that name nor the recorded id is listed.
//   - A pending job without a recorded resource whose name is listed is to
//     be adopted.
func Plan(tracked []Job, listed map[string][]Listed, keepResources bool) Reconciliation {
	var rec Reconciliation
	rec.Orphans, rec.KeptOrphans = planOrphans(tracked, listed, keepResources)

	sorted := slices.Clone(tracked)
	sortJobs(sorted)
	for i := range sorted {
		j := &sorted[i]
		list, judged := listed[j.Runner]
		if !judged {
			continue
		}
		byName := slices.IndexFunc(list, func(l Listed) bool { return l.Name == j.ResourceName })
		if !j.HasResource() {
			if j.Phase == PhasePending && byName >= 0 {
				rec.Adopted = append(rec.Adopted, Adoption{Key: j.Key(), ID: list[byName].ID, Name: list[byName].Name})
			}
			continue
		}
		if j.Phase == PhasePending || byName >= 0 || !ownName(j) {
			continue
		}
		id := ResourceID(j.Resource)
		if id != "" && slices.ContainsFunc(list, func(l Listed) bool { return l.ID == id }) {
			continue
		}
		rec.Vanished = append(rec.Vanished, j.Key())
	}
	return rec
}

// planOrphans returns the listed resources that no tracked job owns (by
// name or by recorded id), in runner then listing order: as orphans, or as
// kept orphans when keepResources.
func planOrphans(tracked []Job, listed map[string][]Listed, keepResources bool) (orphans, kept []Orphan) {
	names := make(map[string]bool, len(tracked))
	ids := make(map[string]bool, len(tracked))
	for i := range tracked {
		j := &tracked[i]
		if j.ResourceName != "" {
			names[j.ResourceName] = true
		}
		if id := ResourceID(j.Resource); id != "" {
			ids[id] = true
		}
	}
	for _, runner := range slices.Sorted(maps.Keys(listed)) {
		for _, l := range listed[runner] {
			if names[l.Name] || (l.ID != "" && ids[l.ID]) {
				continue
			}
			o := Orphan{Runner: runner, ID: l.ID, Name: l.Name}
			if keepResources {
				kept = append(kept, o)
			} else {
				orphans = append(orphans, o)
			}
		}
	}
	return orphans, kept
}

// ownName reports whether j's resource name is of the form executors
// list for j's runner: <prefix><runner>-<job id>.
func ownName(j *Job) bool {
	return strings.HasSuffix(j.ResourceName, j.Runner+"-"+strconv.FormatInt(j.JobID, 10))
}
