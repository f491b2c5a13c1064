package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner exec-job`.
func execJobCommand() *cli.Command {
	return &cli.Command{
		Name:  "exec-job",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner exec-job: not implemented yet", 1)
		},
	}
}
