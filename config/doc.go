// Package config owns paas-runner's configuration file: the TOML types of
// the global and per-runner keys (compatible with Heptapod PAAS Runner and
// gitlab-runner files), their defaults (Default, DefaultRunner,
// DefaultTraceWatch), loading (Load, Parse), validation that reports every
// problem at once with its key path (Validate, *ValidationError), the
// per-runner keys forwarded verbatim to the inner runner (Runner.Extra,
// Runner.InnerConfig), and the Secret type that keeps tokens out of logs.
package config
