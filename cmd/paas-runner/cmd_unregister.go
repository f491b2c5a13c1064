package main

import (
	"fmt"
	"net/http"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
)

func unregisterCommand() *cli.Command {
	return withTrailingFlags(&cli.Command{
		Name:      "unregister",
		Usage:     "unregister runners from their coordinator and remove them from CONFIG",
		ArgsUsage: "CONFIG",
		Description: "For a runner authentication token (glrt-…), only this machine's runner manager is\n" +
			"deleted (DELETE /api/v4/runners/managers); the runner stays in GitLab. For a legacy\n" +
			"token, the whole runner is deleted (DELETE /api/v4/runners). The section is then removed\n" +
			"from CONFIG; a runner the coordinator no longer knows (403/404) is removed too.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Aliases: []string{"n"}, Usage: "name of the runner to unregister"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"all-runners"}, Usage: "unregister every runner of CONFIG"},
		},
		Action: runUnregister,
	})
}

func runUnregister(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("unregister: exactly one CONFIG argument is required", 2)
	}
	name, all := c.String("name"), c.Bool("all")
	if (name == "") == !all {
		return cli.Exit("unregister: give either --name NAME or --all", 2)
	}
	path := c.Args().First()
	data, cfg, err := readConfigFile(path)
	if err != nil {
		return cli.Exit("unregister: "+err.Error(), 1)
	}
	var selected []int
	for i, r := range cfg.Runners {
		if all || r.Name == name {
			selected = append(selected, i)
		}
	}
	if len(selected) == 0 {
		return cli.Exit(fmt.Sprintf("unregister: no runner named %q in %s", name, path), 1)
	}
	sysID, _, err := coordinator.PeekSystemID(path)
	if err != nil {
		return cli.Exit(fmt.Sprintf("unregister: %v", err), 1)
	}
	w := c.App.Writer
	var removed []int
	failed := false
	for _, i := range selected {
		r := &cfg.Runners[i]
		if err := unregisterRunner(c, r, sysID); err != nil {
			fmt.Fprintf(w, "runners[%d] %q: %v (kept in %s)\n", i, r.Name, err, path)
			failed = true
			continue
		}
		fmt.Fprintf(w, "runners[%d] %q: unregistered\n", i, r.Name)
		removed = append(removed, i)
	}
	if len(removed) > 0 {
		if err := dropRunners(c, path, data, cfg, removed); err != nil {
			return cli.Exit(fmt.Sprintf("unregister: remove runners from %s: %v", path, err), 1)
		}
	}
	if failed {
		return cli.Exit("unregister: some runners could not be unregistered", 1)
	}
	return nil
}

// unregisterRunner deletes the runner (legacy token) or this machine's
// runner manager (glrt- token). A coordinator that no longer knows the
// token or manager (403, 404) counts as done.
func unregisterRunner(c *cli.Context, r *config.Runner, sysID string) error {
	if r.Token.IsZero() || r.URL == "" {
		return nil
	}
	cl := coordinator.New(r.URL, r.Token, cliClientOptions(sysID))
	var err error
	action := "delete the runner"
	if coordinator.IsCreatedRunnerToken(r.Token.Reveal()) {
		action = "delete this machine's runner manager"
		err = cl.DeleteManager(c.Context)
	} else {
		err = cl.DeleteRunner(c.Context)
	}
	switch coordinator.StatusCode(err) {
	case 0:
		if err == nil {
			return nil
		}
	case http.StatusForbidden, http.StatusNotFound:
		fmt.Fprintf(c.App.Writer, "runners %q: already gone on the coordinator (HTTP %d)\n", r.Name, coordinator.StatusCode(err))
		return nil
	}
	return explainCoordinatorError(action, r.URL, err)
}
