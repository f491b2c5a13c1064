package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner verify`.
func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner verify: not implemented yet", 1)
		},
	}
}
