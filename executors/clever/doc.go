// Package clever is the clever-docker executor: one Clever Cloud Docker
// application per job, created in the job's organisation (fixed, or read
// from the top-level GitLab group's custom attributes in multi-tenant mode),
// launched by pushing the generated build context (paas/deploy) to the
// application's git deployment repository, and deleted when the job is over.
//
// It registers itself as config.ExecutorCleverDocker. Clever credentials
// are never stored in a dump, logged or put in an error; they are
// re-resolved from the configuration when a resource is restored.
package clever
