package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// manpageCommand prints the man page generated from the command tree; the
// Debian package ships it as paas-runner(1).
func manpageCommand() *cli.Command {
	return &cli.Command{
		Name:   "manpage",
		Usage:  "print the paas-runner(1) man page (roff)",
		Hidden: true,
		Action: func(c *cli.Context) error {
			man, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("render man page: %w", err)
			}
			_, err = fmt.Fprint(c.App.Writer, man)
			return err
		},
	}
}
