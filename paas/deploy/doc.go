// Package deploy builds the per-job build context (Dockerfile, runner.toml,
// job.json) that a provisioned host builds and runs, and pushes it to a git
// deployment repository with go-git, in process.
//
// The same context is pushed to Clever Cloud by executors/clever and built by
// a local Docker Engine by executors/localdocker. It owns:
//   - the Dockerfile for inner_runner = "heptapod" (reference §6.6, byte for
//     byte what Heptapod Runner images expect) and for inner_runner = "agent";
//   - runner.toml, the forwarded [[runners]] table of reference §7.2;
//   - job.json, the payload as received after the dependency-proxy rewrite of
//     reference §7.3 (RewriteDependencyProxy);
//   - Push, the in-memory commit and authenticated push of reference §6.5,
//     with credentials only in go-git's BasicAuth, never in a URL, a log line
//     or a process argument.
package deploy
