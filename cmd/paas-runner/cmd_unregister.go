package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner unregister`.
func unregisterCommand() *cli.Command {
	return &cli.Command{
		Name:  "unregister",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner unregister: not implemented yet", 1)
		},
	}
}
