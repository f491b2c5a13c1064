// Command paas-runner is a GitLab-compatible autoscaling CI runner: it
// acquires jobs from GitLab/Heptapod coordinators and provisions one fresh
// host per job on Clever Cloud, a local Docker Engine or as a local process.
package main
