package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
)

func verifyCommand() *cli.Command {
	return withTrailingFlags(&cli.Command{
		Name:      "verify",
		Usage:     "check every runner's token against its coordinator",
		ArgsUsage: "CONFIG",
		Description: "Sends POST /api/v4/runners/verify (with this machine's system_id) for each [[runners]]\n" +
			"section and prints valid / invalid / unreachable per runner. With --delete, the sections\n" +
			"of invalid runners are removed from CONFIG (the rest of the file is kept as is).\n" +
			"Exits 1 when a runner is invalid (and not deleted) or could not be checked.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "delete", Usage: "remove the sections of invalid runners from CONFIG"},
		},
		Action: runVerify,
	})
}

// runnerVerdict is the outcome of checking one runner.
type runnerVerdict int

const (
	verdictValid runnerVerdict = iota
	verdictInvalid
	verdictUnknown
)

func runVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("verify: exactly one CONFIG argument is required", 2)
	}
	path := c.Args().First()
	data, cfg, err := readConfigFile(path)
	if err != nil {
		return cli.Exit("verify: "+err.Error(), 1)
	}
	sysID, err := coordinator.LoadSystemID(path)
	if err != nil {
		return cli.Exit(fmt.Sprintf("verify: %v", err), 1)
	}
	w := c.App.Writer
	var invalid []int
	failed := false
	for i := range cfg.Runners {
		r := &cfg.Runners[i]
		v, msg := verifyRunner(c, r, sysID)
		fmt.Fprintf(w, "runners[%d] %q (%s): %s\n", i, r.Name, r.URL, msg)
		switch v {
		case verdictInvalid:
			invalid = append(invalid, i)
		case verdictUnknown:
			failed = true
		}
	}
	if len(invalid) > 0 && c.Bool("delete") {
		if err := dropRunners(c, path, data, cfg, invalid); err != nil {
			return cli.Exit(fmt.Sprintf("verify: remove invalid runners: %v", err), 1)
		}
		fmt.Fprintf(w, "Removed %d invalid runner(s) from %s.\n", len(invalid), path)
		invalid = nil
	}
	if failed || len(invalid) > 0 {
		return cli.Exit("verify: some runners are invalid or could not be checked", 1)
	}
	return nil
}

// verifyRunner checks one runner's token.
func verifyRunner(c *cli.Context, r *config.Runner, sysID string) (runnerVerdict, string) {
	if r.Token.IsZero() || r.URL == "" {
		return verdictInvalid, "invalid (no url or token)"
	}
	_, err := coordinator.New(r.URL, r.Token, cliClientOptions(sysID)).Verify(c.Context)
	switch code := coordinator.StatusCode(err); {
	case err == nil:
		return verdictValid, "valid"
	case code == http.StatusForbidden, code == http.StatusGone, code == http.StatusUnprocessableEntity:
		return verdictInvalid, fmt.Sprintf("invalid (HTTP %d)", code)
	default:
		return verdictUnknown, "cannot check: " + err.Error()
	}
}

// readConfigFile reads and parses the configuration file at path, keeping
// its bytes for an in-place edit with dropRunners.
func readConfigFile(path string) ([]byte, *config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return data, cfg, nil
}

// dropRunners removes the runner sections whose index is in drop from the
// file at path (data, parsed as cfg), leaving the rest of the file as is,
// and warns when the quota reference runner was among them.
func dropRunners(c *cli.Context, path string, data []byte, cfg *config.Config, drop []int) error {
	out, err := removeRunners(data, cfg, drop)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, out); err != nil {
		return err
	}
	warnQuotaReference(c, cfg, drop)
	return nil
}

// warnQuotaReference warns when quota_computation.reference_runner names a
// removed runner.
func warnQuotaReference(c *cli.Context, cfg *config.Config, removed []int) {
	if cfg.QuotaComputation == nil {
		return
	}
	for _, i := range removed {
		if cfg.Runners[i].Name == cfg.QuotaComputation.ReferenceRunner {
			fmt.Fprintf(c.App.Writer, "Warning: quota_computation.reference_runner names the removed runner %q; edit the file before starting paas-runner.\n",
				cfg.Runners[i].Name)
		}
	}
}
