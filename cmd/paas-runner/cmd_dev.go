package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner dev`.
func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner dev: not implemented yet", 1)
		},
	}
}
