package main

import "github.com/urfave/cli/v2"

// SKELETON: replaced by the issue that implements `paas-runner register`.
func registerCommand() *cli.Command {
	return &cli.Command{
		Name:  "register",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cli.Exit("paas-runner register: not implemented yet", 1)
		},
	}
}
