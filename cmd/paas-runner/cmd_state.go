package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner state`.
func stateCommand() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner state: not implemented yet", 1)
		},
	}
}
