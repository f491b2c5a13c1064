package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// log is the process logger; packages receive it (or a scoped entry) as a
// logrus.FieldLogger and never use logrus' global logger.
var log = logrus.New()

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Aliases: []string{"l"}, Usage: "debug, info, warn, error (overrides log_level)", EnvVars: []string{"PAAS_RUNNER_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Usage: "text or json (overrides log_format)", EnvVars: []string{"PAAS_RUNNER_LOG_FORMAT"}},
	}
}

// setupLogging applies the command-line log flags; configureLogging applies
// the config file's values unless a flag was given.
func setupLogging(c *cli.Context) error {
	log.SetOutput(os.Stderr)
	return configureLogging(c, "", "")
}

func configureLogging(c *cli.Context, cfgLevel, cfgFormat string) error {
	level, format := cfgLevel, cfgFormat
	if v := c.String("log-level"); v != "" {
		level = v
	}
	if v := c.String("log-format"); v != "" {
		format = v
	}
	if level != "" {
		l, err := logrus.ParseLevel(level)
		if err != nil {
			return cli.Exit(fmt.Sprintf("invalid log level %q", level), 2)
		}
		log.SetLevel(l)
	}
	switch format {
	case "", "text", "runner":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return cli.Exit(fmt.Sprintf("invalid log format %q (text or json)", format), 2)
	}
	return nil
}

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	if ec, ok := errors.AsType[cli.ExitCoder](err); ok {
		return ec.ExitCode()
	}
	return 1
}
