// Package metrics owns the daemon's Prometheus metrics and its local HTTP
// API, served on listen_address.
//
// Metrics implements dispatcher.Observer (event counters and histograms)
// and coordinator.Observer / the Clever client's observer
// (ObserveRequest), and registers a collector that reads the dispatcher's
// immutable Snapshot at scrape time for the gauges (jobs by phase, weight,
// concurrency, provisioning). Every metric lives in the paas_runner
// namespace on a registry the caller owns; labels are bounded (runner
// label, flavor, phase, failure_reason, api, templated endpoint, status):
// never a job id, a job name or a token.
//
// Server serves /metrics, /healthz, /readyz, the JSON API /api/v1/jobs and
// /api/v1/jobs/{runner}/{id} (read by `paas-runner jobs`), and
// gitlab-runner's plain-text /debug/jobs/list.
package metrics
