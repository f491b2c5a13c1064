package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner config`.
func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner config: not implemented yet", 1)
		},
	}
}
