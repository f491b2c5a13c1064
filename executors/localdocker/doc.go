// Package localdocker is the local-docker executor (reference §9.1, for
// development and tests, working unlike the Heptapod original): each job
// gets its own image, built on a local Docker Engine from the same build
// context the clever-docker executor pushes (paas/deploy), and its own
// container running the inner runner with the Docker socket mounted.
//
// Provision builds the image (tag = lowercased resource name), Launch
// starts the container and returns at once, Check inspects it (exited +
// exit code, or gone), Decommission force-removes container and image.
// Images and containers carry the labels paas-runner.runner (runner short
// id), paas-runner.job-id, paas-runner.name and paas-runner.weight, so that
// List and Adopt find them after a crash.
package localdocker
