// Package e2e holds process-level tests of the real paas-runner binary:
// the SIGKILL chaos test, graceful shutdown with launches in flight, SIGHUP
// reload, the resilience suite (API faults, rejected pushes) and the
// process-level benchmark. The binary runs as a child process against
// gitlabfake and clevertest served by the test process on 127.0.0.1, so that
// every resource outlives a killed runner.
//
// `make test` runs reduced sizes; `make chaos` and `make bench` run the full
// ones (see docs/readme/resilience.md and docs/readme/bench.md). Sizes are
// set with environment variables: PAAS_E2E_JOBS, PAAS_E2E_KILLS,
// PAAS_BENCH_JOBS, PAAS_BENCH_LATENCY, PAAS_BENCH_STEADY.
package e2e
