// Package agent is paas-runner's built-in job agent (`paas-runner exec-job`):
// it runs ONE already-acquired GitLab job where it stands. It owns the git
// checkout (go-git: clone, fetch, none; depth and refspecs), the per-step
// shell scripts (script, then after_script always) run in their own process
// group, the job environment (variables, file variables, CI_* predefined
// ones), streaming of the masked job log to the coordinator (PATCH …/trace),
// cancellation and timeout handling, and the final state update (PUT
// /jobs/:id with checksum, repeated while the coordinator answers 202).
package agent
