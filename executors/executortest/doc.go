// Package executortest provides test support for executors: Fake, an
// in-memory executors.Executor with failure and latency knobs whose
// resources live in a shared Cloud (so a restarted daemon sees them), and
// Run, the contract suite every real executor runs against its own fake or
// real backend.
//
// Importing this package registers executor kind "fake" (config.ExecutorFake)
// with the executors registry; only tests import it.
package executortest
