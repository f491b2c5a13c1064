// Package executors owns the Executor contract every backend implements
// (flavors and weights, provision, launch, check, decommission, dump and
// restore, reconciliation listing), deterministic resource naming, the
// JobError type whose public text may reach a job log, and the registry of
// executor kinds.
package executors
