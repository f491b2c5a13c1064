// Package dockertest helps tests that need a real Docker Engine: Require
// connects to the daemon (skipping, or failing under CI=true, when none is
// reachable), and InnerImage builds a tiny FROM scratch image holding a
// static stand-in for the inner runner, since no image can be pulled on
// test machines.
package dockertest
