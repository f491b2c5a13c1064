// Command testagent is `paas-runner exec-job` alone, built by tests that
// need a static agent binary (e.g. for a Docker image) without compiling
// the whole CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"gitlab.com/paas-runner/paas-runner/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "exec-job" {
		args = args[1:]
	}
	os.Exit(agent.Main(ctx, args, agent.Options{}))
}
