package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner run`.
func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner run: not implemented yet", 1)
		},
	}
}
