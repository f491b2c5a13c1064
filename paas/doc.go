// Package paas groups the building blocks executors use to talk to
// platforms: clever (Clever Cloud API client and its fake), docker (Docker
// Engine client) and deploy (build context generation and git push).
package paas
