package state

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// HeptapodMissingWeight is the weight the Heptapod PAAS Runner gives a
// Clever resource dumped before resources had a weight: pessimistic, so that
// such a job blocks the quota rather than overcommit it.
const HeptapodMissingWeight = 32768

// HeptapodRunnerPrefix prefixes the Runner of an imported job whose
// Heptapod runner name matches no configured runner: "heptapod:<name>".
const HeptapodRunnerPrefix = "heptapod:"

// heptapodDefaultPrefix is the resource name prefix the Heptapod PAAS Runner
// always used.
const heptapodDefaultPrefix = "hpd-job-"

// heptapodFile is the Heptapod PAAS Runner state layout (reference §4.2).
type heptapodFile struct {
	Launched         []heptapodHandle    `json:"launched"`
	ToDecommission   []heptapodHandle    `json:"to_decommission"`
	StandbyResources []heptapodHandle    `json:"standby_resources"`
	Pending          [][]json.RawMessage `json:"pending"`
}

type heptapodHandle struct {
	RunnerName     string          `json:"runner_name"`
	JobID          int64           `json:"job_id"`
	Token          string          `json:"token"`
	TraceOffset    int64           `json:"trace_offset"`
	ExpectedWeight *float64        `json:"expected_weight"`
	PaasResource   json.RawMessage `json:"paas_resource"`
}

// heptapodResource is the part of a Clever resource dump the import reads.
type heptapodResource struct {
	ID       string   `json:"id"`
	Weight   *float64 `json:"weight"`
	Launched bool     `json:"launched"`
}

// ImportHeptapod converts a Heptapod PAAS Runner state file (reference
// §4.2: "launched", "pending" as [handle, payload] pairs,
// "to_decommission", "standby_resources") into a File. runners maps
// Heptapod runner names (token[:8]) to runner short ids.
//
// Mapping:
//   - launched → PhaseRunning;
//   - pending → PhasePending, or PhaseProvisioned when it has a resource,
//     or PhaseLaunched when that resource dump says "launched": true; the
//     payload is kept so the job can be launched again;
//   - to_decommission and standby_resources → PhaseDecommissioning (a
//     standby resource is also listed in to_decommission; it is kept once).
//
// The resource dump is kept as is in Job.Resource; Weight is the dump's
// "weight", HeptapodMissingWeight when a Clever dump has none, 1 for a bare
// string dump (local-docker). ResourceName is the name the Heptapod runner
// gave the resource: hpd-job-<runner name>-<job id> for Clever apps, the
// string itself for local-docker. A job of an unknown runner is kept with
// Runner "heptapod:<name>" and a warning: no executor owns it, so the
// dispatcher reports it as orphaned rather than silently dropping it.
func ImportHeptapod(data []byte, runners map[string]string) (*File, []string, error) {
	var hf heptapodFile
	if err := json.Unmarshal(data, &hf); err != nil {
		return nil, nil, fmt.Errorf("%w: heptapod layout: %w", ErrCorrupt, err)
	}
	im := importer{runners: runners, unknown: map[string]bool{}, index: map[Key]int{}}
	for _, h := range hf.Launched {
		im.add(h, PhaseRunning, nil, "launched")
	}
	for i, pair := range hf.Pending {
		if len(pair) != 2 {
			return nil, nil, fmt.Errorf("%w: heptapod layout: pending[%d] is not a [handle, payload] pair", ErrCorrupt, i)
		}
		var h heptapodHandle
		if err := json.Unmarshal(pair[0], &h); err != nil {
			return nil, nil, fmt.Errorf("%w: heptapod layout: pending[%d]: %w", ErrCorrupt, i, err)
		}
		im.add(h, PhasePending, compact(pair[1]), "pending")
	}
	for _, h := range hf.ToDecommission {
		im.add(h, PhaseDecommissioning, nil, "to_decommission")
	}
	for _, h := range hf.StandbyResources {
		im.add(h, PhaseDecommissioning, nil, "standby_resources")
	}
	sortJobs(im.jobs)
	return &File{Version: Version, Jobs: im.jobs}, im.warnings, nil
}

type importer struct {
	runners  map[string]string
	unknown  map[string]bool
	index    map[Key]int
	jobs     []Job
	warnings []string
}

func (im *importer) warnf(format string, args ...any) {
	im.warnings = append(im.warnings, fmt.Sprintf(format, args...))
}

func (im *importer) add(h heptapodHandle, phase Phase, payload json.RawMessage, section string) {
	runner, ok := im.runners[h.RunnerName]
	if !ok {
		runner = HeptapodRunnerPrefix + h.RunnerName
		if !im.unknown[h.RunnerName] {
			im.unknown[h.RunnerName] = true
			im.warnf("heptapod runner %q matches no configured runner: its jobs are kept as runner %q and will be reported as orphaned", h.RunnerName, runner)
		}
	}
	j := Job{
		Runner:         runner,
		JobID:          h.JobID,
		Token:          h.Token,
		ExpectedWeight: 1,
		TraceOffset:    h.TraceOffset,
		Phase:          phase,
		ResourceName:   fmt.Sprintf("%s%s-%d", heptapodDefaultPrefix, h.RunnerName, h.JobID),
		Payload:        payload,
	}
	if h.ExpectedWeight != nil {
		j.ExpectedWeight = *h.ExpectedWeight
	}
	if payload != nil {
		var p struct {
			JobInfo struct {
				ProjectID int64 `json:"project_id"`
			} `json:"job_info"`
		}
		if json.Unmarshal(payload, &p) == nil {
			j.ProjectID = p.JobInfo.ProjectID
		}
	}
	if res := compact(h.PaasResource); res != nil && string(res) != "null" {
		j.Resource = res
		im.resource(&j, section)
	}
	if i, dup := im.index[j.Key()]; dup {
		if section != "standby_resources" || im.jobs[i].Phase != PhaseDecommissioning {
			im.warnf("job %d of heptapod runner %q listed again in %q; keeping that record", h.JobID, h.RunnerName, section)
		}
		im.jobs[i] = j
		return
	}
	im.index[j.Key()] = len(im.jobs)
	im.jobs = append(im.jobs, j)
}

// resource fills Weight, ResourceName and (for pending jobs) Phase from the
// resource dump in j.Resource.
func (im *importer) resource(j *Job, section string) {
	var name string
	if json.Unmarshal(j.Resource, &name) == nil {
		// local-docker: the dump is the image name, which is also the
		// resource name; local-docker jobs weigh 1.
		j.ResourceName, j.Weight = name, 1
		if j.Phase == PhasePending {
			j.Phase = PhaseProvisioned
		}
		return
	}
	var r heptapodResource
	if err := json.Unmarshal(j.Resource, &r); err != nil {
		im.warnf("job %d (%s): unreadable resource dump kept as is: %v", j.JobID, section, err)
		j.Weight = HeptapodMissingWeight
		return
	}
	if r.Weight != nil {
		j.Weight = *r.Weight
	} else {
		j.Weight = HeptapodMissingWeight
		im.warnf("job %d (%s): resource %s has no weight; counting the pessimistic %d", j.JobID, section, r.ID, HeptapodMissingWeight)
	}
	if j.Phase == PhasePending {
		j.Phase = PhaseProvisioned
		if r.Launched {
			j.Phase = PhaseLaunched
		}
	}
}

// compact returns raw without insignificant white space (nil for nil).
func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}
