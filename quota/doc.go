// Package quota computes job weights from flavors (RAM GiB^1.25), the
// weighted quota of [quota_computation], and owns the admission ledger that
// enforces the weighted quota, the job count cap and the provisioning cap.
// It does no I/O.
package quota
