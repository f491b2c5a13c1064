// Package state owns the crash-safe persistence of tracked jobs: a versioned
// JSON file written atomically with coalesced writes, intent records written
// before resources are created, import of Heptapod PAAS Runner state files,
// and the reconciliation of tracked jobs against listed resources.
package state
