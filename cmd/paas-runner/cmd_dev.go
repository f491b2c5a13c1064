package main

import (
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/devmode"
)

// devCommand is `paas-runner dev` (and `make dev`): a fake GitLab with a
// demo project and pipeline, run by the real dispatcher with local-process
// jobs, with live progress and a summary. Exit status 0 when every demo job
// reached its expected outcome.
func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a demo pipeline against an embedded fake GitLab (needs nothing but this binary)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "non-interactive", Usage: "print plain progress lines instead of a live table"},
			&cli.StringFlag{Name: "executor", Value: "local-process", Usage: "executor running the demo jobs: local-process, or local-docker (each job in its own image, with the agent; needs a Docker daemon)"},
			&cli.StringFlag{Name: "image", Value: "alpine:3.20", Usage: "job image with --executor local-docker (needs a POSIX sh; pulled when missing)"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the demo repository, work directories and logs (default: a new temporary directory)"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "address of the fake GitLab"},
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "multiplies the demo's sleeps and the daemon's intervals"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up after this long"},
			&cli.StringFlag{Name: "metrics-listen", Value: "127.0.0.1:0", Usage: `address of /metrics during the demo ("off" to disable)`},
		},
		Action: func(c *cli.Context) error {
			if c.String("log-level") == "" {
				log.SetLevel(logrus.WarnLevel)
			}
			interactive := !c.Bool("non-interactive") && isTerminal(os.Stdout)
			sum, err := devmode.Run(c.Context, devmode.Options{
				Dir:         c.String("dir"),
				Listen:      c.String("listen"),
				Executor:    c.String("executor"),
				Image:       c.String("image"),
				Scale:       c.Float64("scale"),
				Out:         c.App.Writer,
				Interactive: interactive,
				Logger:      log,
				Timeout:     c.Duration("timeout"),
				Version:     version,

				MetricsListen: c.String("metrics-listen"),
			})
			if err != nil {
				return cli.Exit(fmt.Sprintf("paas-runner dev: %v", err), 1)
			}
			if !sum.AllExpected() {
				return cli.Exit("paas-runner dev: some jobs did not reach their expected outcome", 1)
			}
			return nil
		},
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
