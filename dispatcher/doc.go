// Package dispatcher is the heart of paas-runner: it polls the configured
// coordinators, admits acquired jobs into the global weighted quota, drives
// each job through provision → launch → real start → finish → decommission,
// persists every step to the state store before acting on it, restores and
// reconciles after a restart, and shuts down gracefully.
//
// Concurrency model: ONE goroutine (the owner, running inside Run) holds all
// mutable state — the tracked jobs, the quota ledger and the per-runner poll
// state. Everything that does I/O (job requests, provisioning, launches,
// status and trace checks, failure reports, decommissions, listings) runs as
// a short-lived operation in a bounded pool and hands its result back to the
// owner as an event (a closure executed by the owner). A running job costs a
// timer entry, never a goroutine. Readers (metrics, the SIGUSR1 dump, dev
// mode) get an immutable Snapshot published through an atomic pointer.
//
// Assemble builds a Dispatcher (coordinator clients, executors, state store)
// from a configuration; `paas-runner run` and `paas-runner dev` share it.
package dispatcher
