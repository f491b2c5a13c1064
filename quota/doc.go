// Package quota computes job weights from flavors (RAM GiB^1.25), selects a
// job's flavor (CI_CLEVER_CLOUD_FLAVOR, default and max flavor), computes
// the weighted quota of [quota_computation], and owns the admission Ledger
// that enforces the weighted quota, the job count cap (concurrent), the hard
// cap on jobs still provisioning and the spacing between launches.
//
// It does no I/O and starts no goroutine; a Ledger is owned by one
// goroutine (the dispatcher's) and is not safe for concurrent use.
package quota
