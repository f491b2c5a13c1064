// Package docker is paas-runner's Docker Engine client, on the official Go
// client (github.com/moby/moby/client, never the docker CLI). It builds an
// image from a build context tar stream, runs a labelled container with the
// Docker socket mounted, inspects its state without blocking (callers poll
// Inspect instead of waiting for the whole job), removes containers and
// images (already gone = success) and lists what carries given labels, for
// reconciliation.
//
// It negotiates the API version with the daemon, so old engines (Debian's
// docker.io 20.10, API 1.41) work; the client's minimum is API 1.40.
package docker
