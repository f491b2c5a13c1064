package main

import (
	"cmp"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/agent"
)

// execJobCommand is `paas-runner exec-job --config runner.toml job.json`:
// the built-in job agent (same argument shape as Heptapod Runner's
// exec-fetched-job). It runs one already-acquired job where it stands and
// reports to the coordinator with the job token. Exit status: 0 job
// succeeded, 1 job failed or canceled, 2 the agent could not run or report it.
func execJobCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec-job",
		Usage:     "run one already-acquired job here (the built-in job agent)",
		ArgsUsage: "JOB_JSON",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "runner.toml holding the [[runners]] section (url, builds_dir, [runners.agent])", Required: true},
			&cli.StringFlag{Name: "builds-dir", Usage: "CI_BUILDS_DIR (default: builds_dir of the config, else ./builds)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("exec-job: expected exactly one argument, the job payload file", 2)
			}
			agent.Version = version
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := agent.RunFiles(ctx, c.String("config"), c.Args().First(), agent.Options{
				BuildsDir: c.String("builds-dir"),
				Logger:    log,
			})
			code := agent.ExitCode(res, err)
			switch {
			case err != nil:
				return cli.Exit(fmt.Sprintf("exec-job: %v", err), code)
			case code != 0:
				return cli.Exit(fmt.Sprintf("exec-job: job %s (%s)", cmp.Or(res.State, "aborted"), res.FailureReason), code)
			}
			return nil
		},
	}
}
