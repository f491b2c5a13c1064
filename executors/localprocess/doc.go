// Package localprocess is the `local-process` executor: each job runs as a
// child process `paas-runner exec-job` (the built-in agent) in its own
// process group and its own work directory <work_root>/<resource name>
// (job.json and runner.toml 0600, agent.log, pid, exit-code). It is tracked
// by pid and directory, and reconciled by scanning the work root. It needs
// no Docker and no cloud account: the embedded default for development.
package localprocess
