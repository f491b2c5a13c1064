// Package devmode is `paas-runner dev`: a self-contained demonstration that
// needs nothing but this binary. It serves gitlabfake and a demo project (a
// real git repository created with go-git, served over smart HTTP by
// go-git's server) on one loopback port, enqueues a demo pipeline across
// flavors XS…L (including a failing job and one asking for an invalid
// flavor), runs the real dispatcher in-process with the local-process
// executor, shows live progress, and ends with a summary and the saved job
// logs.
package devmode
