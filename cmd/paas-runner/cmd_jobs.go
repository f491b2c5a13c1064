package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/metrics"
)

// jobsAPITimeout bounds one request to the daemon's local API.
const jobsAPITimeout = 10 * time.Second

// jobsCommand is `paas-runner jobs`: the tracked jobs of the running
// daemon, read from its local API on listen_address.
func jobsCommand() *cli.Command {
	flags := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Usage: "host:port (or URL) of the daemon's local API (default: listen_address of --config)", EnvVars: []string{"PAAS_RUNNER_ADDRESS"}},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration file whose listen_address is used"},
			&cli.BoolFlag{Name: "json", Usage: "print the API's JSON instead of a table"},
		}
	}
	return &cli.Command{
		Name:  "jobs",
		Usage: "inspect the jobs the running daemon tracks (through its local API on listen_address)",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list the tracked jobs: id, runner, flavor, weight, phase, resource, times",
				Flags:  flags(),
				Action: jobsList,
			},
			{
				Name:      "inspect",
				Usage:     "show one tracked job in detail",
				ArgsUsage: "RUNNER/ID",
				Flags:     flags(),
				Action:    jobsInspect,
			},
		},
	}
}

// apiBase returns the base URL of the daemon's local API from --address,
// else from the listen_address of --config.
func apiBase(c *cli.Context) (string, error) {
	addr := c.String("address")
	if addr == "" {
		path := c.String("config")
		if path == "" {
			return "", cli.Exit("paas-runner jobs: give --address HOST:PORT or --config CONFIG", 2)
		}
		cfg, err := config.Load(path)
		if err != nil {
			return "", cli.Exit(fmt.Sprintf("paas-runner jobs: %v", err), 2)
		}
		if cfg.ListenAddress == "" {
			return "", cli.Exit(fmt.Sprintf("paas-runner jobs: %s sets no listen_address: the daemon serves no local API", path), 2)
		}
		addr = cfg.ListenAddress
	}
	return baseURL(addr)
}

// baseURL turns host:port (a wildcard host meaning this machine) or a URL
// into the API's base URL.
func baseURL(addr string) (string, error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", cli.Exit(fmt.Sprintf("paas-runner jobs: invalid address %q: %v", addr, err), 2)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// apiGet GETs path on the local API and decodes a 200 answer into v.
func apiGet(ctx context.Context, base, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, jobsAPITimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	hc := &http.Client{Timeout: jobsAPITimeout}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("query the daemon at %s (is it running with listen_address set?): %w", base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return &apiStatusError{Status: resp.StatusCode, Message: e.Error}
		}
		return &apiStatusError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}

// apiStatusError is a non-200 answer of the local API.
type apiStatusError struct {
	Status  int
	Message string
}

func (e *apiStatusError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}

func jobsList(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit("usage: paas-runner jobs list [--address HOST:PORT | --config CONFIG] [--json]", 2)
	}
	base, err := apiBase(c)
	if err != nil {
		return err
	}
	var list metrics.JobList
	if err := apiGet(c.Context, base, metrics.JobsPath, &list); err != nil {
		return cli.Exit(fmt.Sprintf("paas-runner jobs list: %v", err), 1)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, list)
	}
	return writeJobTable(c.App.Writer, list)
}

// writeJobTable prints the list as a table, in the style of Waypoint's
// task list.
func writeJobTable(w io.Writer, list metrics.JobList) error {
	if len(list.Jobs) == 0 {
		_, err := fmt.Fprintln(w, "no tracked jobs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tRUNNER\tFLAVOR\tWEIGHT\tPHASE\tRESOURCE ID\tACQUIRED\tSTARTED\tFINISHED")
	for _, j := range list.Jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.JobID, j.Runner, cmp.Or(j.Flavor, "default"),
			weightText(j), j.Phase, dash(j.ResourceID), timeText(j.AcquiredAt), timeText(j.StartedAt), timeText(j.FinishedAt))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// weightText is the weight counted in the quota, with the flavor's weight
// in parentheses once released.
func weightText(j metrics.Job) string {
	if j.Weight == 0 && j.ExpectedWeight != 0 {
		return fmt.Sprintf("0 (%.2f)", j.ExpectedWeight)
	}
	return strconv.FormatFloat(j.Weight, 'f', 2, 64)
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func jobsInspect(c *cli.Context) error {
	runner, idText, ok := strings.Cut(c.Args().First(), "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	if c.NArg() != 1 || !ok || runner == "" || err != nil {
		return cli.Exit("usage: paas-runner jobs inspect [--address HOST:PORT | --config CONFIG] [--json] RUNNER/ID", 2)
	}
	base, err := apiBase(c)
	if err != nil {
		return err
	}
	var j metrics.Job
	path := fmt.Sprintf("%s/%s/%d", metrics.JobsPath, url.PathEscape(runner), id)
	if err := apiGet(c.Context, base, path, &j); err != nil {
		if se, ok := errors.AsType[*apiStatusError](err); ok && se.Status == http.StatusNotFound {
			return cli.Exit(fmt.Sprintf("paas-runner jobs inspect: %s", se.Message), 1)
		}
		return cli.Exit(fmt.Sprintf("paas-runner jobs inspect: %v", err), 1)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, j)
	}
	return writeJobDetail(c.App.Writer, j)
}

// writeJobDetail prints one job, one field a line.
func writeJobDetail(w io.Writer, j metrics.Job) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Job ID", strconv.FormatInt(j.JobID, 10))
	row("Runner", fmt.Sprintf("%s (%s)", j.Runner, j.RunnerID))
	row("Project ID", strconv.FormatInt(j.ProjectID, 10))
	row("Flavor", cmp.Or(j.Flavor, "default"))
	row("Weight", fmt.Sprintf("%.2f counted, %.2f expected", j.Weight, j.ExpectedWeight))
	row("Phase", j.Phase)
	row("Resource ID", dash(j.ResourceID))
	row("Resource name", dash(j.ResourceName))
	row("Acquired", timeText(j.AcquiredAt))
	row("Started", timeText(j.StartedAt))
	row("Finished", timeText(j.FinishedAt))
	row("Failure owed", dash(j.FailureOwed))
	row("Decommission attempts", strconv.Itoa(j.DecommissionAttempts))
	row("Last error", dash(j.LastError))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write job: %w", err)
	}
	return nil
}
