// Package gitlabfake is an in-process fake GitLab/Heptapod coordinator that
// speaks the runner wire protocol faithfully (gitlab-runner-api.md §9): runner
// registration, verification and deletion (legacy registration tokens and
// glrt- authentication tokens, runner managers by system_id), a per-runner
// job queue with the X-GitLab-Last-Update protocol, realistic job payloads,
// the pending → running → success/failed/canceled state machine with
// cancellation, two-phase job commit (a request that advertises
// two_phase_job_commit gets the job assigned but still pending; PUT
// state=running accepts it; one not accepted within Options.AcceptTimeout
// goes back to the queue with the same id and job token, counted in
// Job.Requeued), job-token checks, trace storage with Content-Range/Range/416
// semantics, the final PUT with Job-Status and optional 202s, GET /job, the
// admin read API (project jobs, traces, groups and their custom attributes),
// request counters per endpoint template and fault knobs (error rate,
// latency, forced statuses, 429 + Retry-After, dropped connections).
//
// Tests start it with New(...).Start() (an httptest server); `paas-runner
// dev` serves it on a port with ListenAndServe. Every method is safe for
// concurrent use.
package gitlabfake
