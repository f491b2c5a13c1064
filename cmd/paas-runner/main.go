package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Build information, set with -ldflags "-X main.version=…".
var (
	version  = "dev"
	revision = "unknown"
)

func newApp() *cli.App {
	return &cli.App{
		Name:    "paas-runner",
		Usage:   "GitLab-compatible autoscaling CI runner: one fresh PaaS host per job",
		Version: version,
		Flags:   logFlags(),
		Before:  setupLogging,
		Commands: []*cli.Command{
			runCommand(),
			configCommand(),
			registerCommand(),
			verifyCommand(),
			unregisterCommand(),
			jobsCommand(),
			stateCommand(),
			execJobCommand(),
			devCommand(),
			versionCommand(),
			manpageCommand(),
		},
	}
}

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "paas-runner:", err)
		os.Exit(exitCode(err))
	}
}
