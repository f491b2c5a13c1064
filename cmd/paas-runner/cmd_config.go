package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
)

// exitInvalidConfig is the exit code of an invalid configuration, as the
// Heptapod runner's ConfigurationError.
const exitInvalidConfig = 2

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect configuration files",
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "load and validate configuration files, printing every problem",
				ArgsUsage: "CONFIG [CONFIG…]",
				Description: "Prints \"CONFIG: OK\" and a summary for a valid file, or one problem per line\n" +
					"(key path: message). Exits 2 when a file is invalid, 1 when it cannot be read.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also print notes (forwarded keys, ignored gitlab-runner keys)"},
				},
				Action: configCheck,
			},
		},
	}
}

// configCheck implements `paas-runner config check`.
func configCheck(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("config check: missing CONFIG argument", exitInvalidConfig)
	}
	w := c.App.Writer
	code := 0
	for _, path := range c.Args().Slice() {
		code = max(code, checkFile(w, path, c.Bool("verbose")))
	}
	switch code {
	case 0:
		return nil
	case exitInvalidConfig:
		return cli.Exit("config check: invalid configuration", code)
	default:
		return cli.Exit("config check: unreadable configuration", code)
	}
}

// checkFile prints the verdict on one file and returns its exit code.
func checkFile(w io.Writer, path string, verbose bool) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", path, err)
		if pe := new(fs.PathError); errors.As(err, &pe) {
			return 1
		}
		return exitInvalidConfig
	}
	for _, warning := range cfg.Warnings() {
		fmt.Fprintf(w, "%s: warning: %s\n", path, warning)
	}
	if verbose {
		for _, n := range cfg.Notices() {
			fmt.Fprintf(w, "%s: note: %s\n", path, n)
		}
	}
	if err := cfg.Validate(); err != nil {
		var verr *config.ValidationError
		if !errors.As(err, &verr) {
			fmt.Fprintf(w, "%s: %v\n", path, err)
			return exitInvalidConfig
		}
		for _, p := range verr.Problems {
			fmt.Fprintf(w, "%s: %s\n", path, p.Error())
		}
		fmt.Fprintf(w, "%s: %d problem(s)\n", path, len(verr.Problems))
		return exitInvalidConfig
	}
	fmt.Fprintf(w, "%s: OK\n%s\n", path, summary(cfg))
	return 0
}

// summary is the one-line description of a valid configuration.
func summary(cfg *config.Config) string {
	runners := make([]string, len(cfg.Runners))
	for i := range cfg.Runners {
		r := &cfg.Runners[i]
		runners[i] = fmt.Sprintf("%s [%s]", r.Label(), r.Executor)
	}
	q := cfg.QuotaComputation
	return fmt.Sprintf("%d runner(s): %s; quota = %d × weight of flavor %s of runner %q; concurrent = %d, paas_max_concurrent_provisioning = %d",
		len(cfg.Runners), strings.Join(runners, ", "),
		q.ReferenceJobsCount, q.ReferenceFlavor, q.ReferenceRunner,
		cfg.Concurrent, cfg.PaasMaxConcurrentProvisioning)
}
