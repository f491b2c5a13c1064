package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner jobs`.
func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner jobs: not implemented yet", 1)
		},
	}
}
