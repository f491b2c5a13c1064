// Package clevertest is a fake Clever Cloud API for tests: the product
// catalogues, the application lifecycle of several organisations (each with
// its own token), an inventory of what was created, fault knobs per
// endpoint, and deployment repositories that are real bare git repositories
// served by `git http-backend`, so that pushes are real and their content
// can be asserted.
package clevertest
