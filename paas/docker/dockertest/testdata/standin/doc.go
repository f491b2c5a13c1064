// Command standin stands in for the inner runner in Docker tests: built
// static and placed at /usr/bin/gitlab-runner (and /usr/local/bin/paas-runner)
// of a FROM scratch image.
//
//	standin exec-fetched-job --config runner.toml job.json
//	standin exec-job --config runner.toml job.json
//	    reads both files and reports the job to the coordinator of
//	    runner.toml: one trace PATCH, then PUT state=success, with the job
//	    token. Job variables steer it: STANDIN_SLEEP (Go duration) sleeps
//	    first, STANDIN_EXIT (int) exits with that code without reporting.
//	standin exit N      exits with code N
//	standin sleep D     sleeps for duration D, then exits 0
package main
