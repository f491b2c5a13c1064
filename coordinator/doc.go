// Package coordinator is paas-runner's client of GitLab/Heptapod
// coordinators: the runner API (job requests, job status, trace appends,
// failure reports, registration) over go-retryablehttp with explicit
// timeouts and one retry classifier, and the REST side (group custom
// attributes) through client-go. It also owns the job payload types.
package coordinator
