package dispatcher

import (
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
	"gitlab.com/paas-runner/paas-runner/state"
)

// lane is one of a job's independent activities; each has at most one
// operation in flight and one pending timer.
type lane int

const (
	// laneMain: restore, adopt, provision, launch, watch, finish checks.
	laneMain lane = iota
	// laneReport: the failure report owed to the coordinator.
	laneReport
	// laneDecom: the resource deletion.
	laneDecom
	numLanes
)

// job is the owner's record of one tracked job.
type job struct {
	rec       state.Job // persisted form (Put after every change)
	key       state.Key
	r         *runner          // nil: its runner is not configured any more
	payload   *coordinator.Job // nil once launched (or when lost)
	res       executors.Resource
	ledgerKey string
	inLedger  bool
	log       logrus.FieldLogger

	busy  [numLanes]bool
	timer [numLanes]*timerRef
	gone  bool // no longer tracked

	launchStart    time.Time
	resSince       time.Time
	checkEvery     time.Duration
	watchDeadline  time.Time
	mainBackoff    time.Duration
	reportBackoff  time.Duration
	decomBackoff   time.Duration
	decomSince     time.Time
	decomAttempts  int
	reportAttempts int
	lineWritten    bool
	decommissioned bool
	lastError      string
	// fresh: acquired by this process, its acquisition not yet counted
	// (it is, once accepted).
	fresh bool
	// reassigned: handed out to us again while its accept was in flight;
	// a refusal of that accept is answered by accepting again.
	reassigned bool
}

func (d *Dispatcher) newJob(rec state.Job, r *runner) *job {
	j := &job{rec: rec, key: rec.Key(), r: r, ledgerKey: "job:" + rec.Runner + ":" + strconv.FormatInt(rec.JobID, 10)}
	fields := logrus.Fields{"job_id": rec.JobID}
	if r != nil {
		j.log = r.log.WithFields(fields)
	} else {
		fields["runner"] = rec.Runner
		j.log = d.log.WithFields(fields)
	}
	return j
}

func (j *job) label() string {
	if j.r != nil {
		return j.r.label
	}
	return j.rec.Runner
}

func (j *job) token() config.Secret { return config.Secret(j.rec.Token) }

func (j *job) spec() executors.JobSpec {
	return executors.JobSpec{Job: j.payload, ResourceName: j.rec.ResourceName}
}

func (j *job) setTimer(l lane, t *timerRef) {
	j.timer[l].cancel()
	j.timer[l] = t
}

// put persists the job's record (in memory; the store coalesces writes).
func (d *Dispatcher) put(j *job) {
	if !j.gone {
		d.store.Put(j.rec)
	}
}

func jobFlavor(p *coordinator.Job) string {
	if p == nil {
		return ""
	}
	v, _ := p.Variable(quota.FlavorVariable)
	return v
}

// releaseJob releases the job's ledger entry (once).
func (d *Dispatcher) releaseJob(j *job) {
	if !j.inLedger {
		return
	}
	j.inLedger = false
	d.releaseKey(j.ledgerKey)
}

func (d *Dispatcher) releaseKey(key string) {
	if err := d.ledger.Release(key); err != nil {
		d.log.WithError(err).WithField("key", key).Error("ledger release failed")
	}
	d.wake()
}

// maybeForget stops tracking a job that is over, owes no report and has no
// resource left to delete. A kept resource stays tracked (KeepResource).
func (d *Dispatcher) maybeForget(j *job) {
	if j.gone || j.rec.Phase != state.PhaseDecommissioning || j.rec.PendingFailure != nil {
		return
	}
	for _, b := range j.busy {
		if b {
			return
		}
	}
	hasRes := j.res != nil || len(j.rec.Resource) > 0
	if hasRes && !j.decommissioned {
		return // deleting, or kept on purpose
	}
	d.releaseJob(j)
	for l := range j.timer {
		j.setTimer(lane(l), nil)
	}
	j.gone = true
	delete(d.jobs, j.key)
	d.store.Delete(j.key)
	j.log.Debug("job no longer tracked")
}
