package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

// stateListTimeout bounds the listing of one executor's resources, and
// the deletion of one orphan, in `state reconcile`.
const stateListTimeout = 2 * time.Minute

func stateCommand() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "inspect and repair the state file (tracked jobs and their resources)",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "print the tracked jobs and resources (secrets masked)",
				ArgsUsage: "CONFIG",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
				},
				Action: stateShow,
			},
			{
				Name:      "forget",
				Usage:     "stop tracking a job (refused while the daemon runs)",
				ArgsUsage: "CONFIG JOB_ID",
				Description: "Removes the job's record from the state file. Its resource, if any, is no\n" +
					"longer tracked: the next reconciliation deletes it as an orphan.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "runner", Usage: "runner name or short id, when several runners track JOB_ID"},
				},
				Action: stateForget,
			},
			{
				Name:      "reconcile",
				Usage:     "list every runner's resources and delete those no job tracks",
				ArgsUsage: "CONFIG",
				Description: "Compares the resources each executor lists with the state file. Orphans\n" +
					"(resources no tracked job owns) are deleted unless --dry-run is given or\n" +
					"paas_finished_jobs_keep_resources is set. Refused while the daemon runs,\n" +
					"except with --dry-run.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Usage: "only print what would be deleted"},
				},
				Action: stateReconcile,
			},
		},
	}
}

// stateConfig is what the state subcommands need from the configuration.
type stateConfig struct {
	cfg  *config.Config
	path string
	// heptapod maps Heptapod runner names to short ids (state import).
	heptapod map[string]string
	// labels maps short ids to runner labels.
	labels map[string]string
}

// loadStateConfig loads CONFIG. Only reconcile, which builds executors,
// needs a valid configuration: show and forget work from any readable one.
func loadStateConfig(c *cli.Context, want int, validate bool) (*stateConfig, error) {
	if c.NArg() != want {
		return nil, cli.Exit(fmt.Sprintf("state %s: expected %d argument(s), see --help", c.Command.Name, want), exitInvalidConfig)
	}
	load := config.Load
	if validate {
		load = config.LoadAndValidate
	}
	cfg, err := load(c.Args().First())
	if err != nil {
		return nil, cli.Exit(err.Error(), exitInvalidConfig)
	}
	if err := configureLogging(c, cfg.LogLevel, cfg.LogFormat); err != nil {
		return nil, err
	}
	if cfg.StateFile == "" {
		return nil, cli.Exit("state_file is not set in "+c.Args().First()+": nothing is persisted", exitInvalidConfig)
	}
	sc := &stateConfig{cfg: cfg, path: cfg.StateFile, heptapod: state.HeptapodRunners(cfg.Runners), labels: map[string]string{}}
	for i := range cfg.Runners {
		r := &cfg.Runners[i]
		sc.labels[r.ShortID()] = r.Label()
	}
	return sc, nil
}

// label returns the runner label of a short id (the id itself if unknown).
func (sc *stateConfig) label(shortID string) string {
	if l, ok := sc.labels[shortID]; ok {
		return l
	}
	return shortID
}

// readState reads the state file without taking the lock and logs its
// warnings.
func (sc *stateConfig) readState() (*state.File, []string, error) {
	f, warnings, err := state.ReadFile(sc.path, sc.heptapod)
	if err != nil {
		return nil, nil, cli.Exit(err.Error(), 1)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	return f, warnings, nil
}

// stateShow implements `paas-runner state show`.
func stateShow(c *cli.Context) error {
	sc, err := loadStateConfig(c, 1, false)
	if err != nil {
		return err
	}
	f, warnings, err := sc.readState()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return showJSON(c.App.Writer, sc, f, warnings)
	}
	return showTable(c.App.Writer, sc, f)
}

// shownJob is a job as `state show --json` prints it: secrets masked.
type shownJob struct {
	state.Job
	RunnerLabel string `json:"runner_label"`
	ResourceID  string `json:"resource_id,omitempty"`
}

func maskJob(j state.Job) state.Job {
	if j.Token != "" {
		j.Token = config.Masked
	}
	if len(j.Payload) > 0 {
		// The payload holds the job token and the CI variables.
		j.Payload = json.RawMessage(`"` + config.Masked + `"`)
	}
	j.Resource = maskDump(j.Resource)
	return j
}

// maskDump masks secret-looking members of a resource dump (e.g. the
// helper's paas_token) and credentials in URLs.
func maskDump(dump json.RawMessage) json.RawMessage {
	if len(dump) == 0 {
		return dump
	}
	var v any
	if err := json.Unmarshal(dump, &v); err != nil {
		return json.RawMessage(`"` + config.Masked + `"`)
	}
	b, err := json.Marshal(maskValue("", v))
	if err != nil {
		return json.RawMessage(`"` + config.Masked + `"`)
	}
	return b
}

func maskValue(key string, v any) any {
	k := strings.ToLower(key)
	if strings.Contains(k, "token") || strings.Contains(k, "secret") || strings.Contains(k, "password") {
		return config.Masked
	}
	switch t := v.(type) {
	case map[string]any:
		for mk, mv := range t {
			t[mk] = maskValue(mk, mv)
		}
		return t
	case []any:
		for i := range t {
			t[i] = maskValue(key, t[i])
		}
		return t
	case string:
		if u, err := url.Parse(t); err == nil && u.User != nil && u.Host != "" {
			u.User = url.User(config.Masked)
			return u.String()
		}
	}
	return v
}

func showJSON(w io.Writer, sc *stateConfig, f *state.File, warnings []string) error {
	out := struct {
		StateFile string     `json:"state_file"`
		Version   int        `json:"version"`
		SavedAt   time.Time  `json:"saved_at,omitzero"`
		Jobs      []shownJob `json:"jobs"`
		Warnings  []string   `json:"warnings,omitempty"`
	}{StateFile: sc.path, Version: f.Version, SavedAt: f.SavedAt, Jobs: []shownJob{}, Warnings: warnings}
	for _, j := range f.Jobs {
		out.Jobs = append(out.Jobs, shownJob{Job: maskJob(j), RunnerLabel: sc.label(j.Runner), ResourceID: state.ResourceID(j.Resource)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("print state: %w", err)
	}
	return nil
}

func showTable(w io.Writer, sc *stateConfig, f *state.File) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUNNER\tJOB ID\tPHASE\tFLAVOR\tWEIGHT\tRESOURCE NAME\tRESOURCE ID\tACQUIRED\tSTARTED")
	for _, j := range f.Jobs {
		weight := j.ExpectedWeight
		if j.HasResource() && j.Weight != 0 {
			weight = j.Weight
		}
		phase := string(j.Phase)
		if j.KeepResource {
			phase += " (kept)"
		}
		if j.PendingFailure != nil {
			phase += " (failure owed: " + j.PendingFailure.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n",
			sc.label(j.Runner), j.JobID, phase, dash(j.Flavor), weight, dash(j.ResourceName),
			dash(state.ResourceID(j.Resource)), stamp(j.AcquiredAt), stamp(j.StartedAt))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print state: %w", err)
	}
	saved := "never"
	if !f.SavedAt.IsZero() {
		saved = f.SavedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%d tracked job(s) in %s, saved %s\n", len(f.Jobs), sc.path, saved)
	return nil
}

// dash is s, or "-" when s is empty (table cells).
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// lockState takes the daemon's lock, turning "held" into a clear exit.
func lockState(path string) (func(), error) {
	unlock, err := state.Lock(path)
	if errors.Is(err, state.ErrLocked) {
		return nil, cli.Exit(fmt.Sprintf("%v: stop the daemon first", err), 1)
	}
	if err != nil {
		return nil, cli.Exit(err.Error(), 1)
	}
	return unlock, nil
}

// stateForget implements `paas-runner state forget`.
func stateForget(c *cli.Context) error {
	sc, err := loadStateConfig(c, 2, false)
	if err != nil {
		return err
	}
	jobID, err := strconv.ParseInt(c.Args().Get(1), 10, 64)
	if err != nil || jobID <= 0 {
		return cli.Exit(fmt.Sprintf("state forget: invalid JOB_ID %q", c.Args().Get(1)), exitInvalidConfig)
	}
	unlock, err := lockState(sc.path)
	if err != nil {
		return err
	}
	defer unlock()
	store, err := state.Open(sc.path, log, state.WithHeptapodRunners(sc.heptapod))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	f, err := store.Load()
	if err != nil {
		_ = store.Close(c.Context)
		return cli.Exit(err.Error(), 1)
	}
	var matches []state.Job
	for _, j := range f.Jobs {
		if j.JobID == jobID && sc.runnerMatches(c.String("runner"), j.Runner) {
			matches = append(matches, j)
		}
	}
	switch len(matches) {
	case 0:
		err = cli.Exit(fmt.Sprintf("state forget: job %d is not tracked", jobID), 1)
	case 1:
		j := matches[0]
		store.Delete(j.Key())
		fmt.Fprintf(c.App.Writer, "forgot job %d of runner %s", j.JobID, sc.label(j.Runner))
		if j.HasResource() || j.Phase == state.PhasePending {
			fmt.Fprintf(c.App.Writer, "; its resource %s is no longer tracked and will be deleted by the next reconciliation", j.ResourceName)
		}
		fmt.Fprintln(c.App.Writer)
	default:
		var runners []string
		for _, j := range matches {
			runners = append(runners, sc.label(j.Runner)+" ("+j.Runner+")")
		}
		err = cli.Exit(fmt.Sprintf("state forget: job %d is tracked for several runners, choose one with --runner: %s",
			jobID, strings.Join(runners, ", ")), 1)
	}
	if cerr := store.Close(c.Context); cerr != nil {
		return cli.Exit(cerr.Error(), 1)
	}
	return err
}

// runnerMatches reports whether the --runner selector (empty = any) names
// the runner of short id shortID, by label, name or short id.
func (sc *stateConfig) runnerMatches(selector, shortID string) bool {
	return selector == "" || selector == shortID || selector == sc.label(shortID) ||
		selector == strings.TrimPrefix(shortID, state.HeptapodRunnerPrefix)
}

// stateReconcile implements `paas-runner state reconcile`.
func stateReconcile(c *cli.Context) error {
	sc, err := loadStateConfig(c, 1, true)
	if err != nil {
		return err
	}
	dryRun := c.Bool("dry-run")
	if !dryRun {
		unlock, err := lockState(sc.path)
		if err != nil {
			return err
		}
		defer unlock()
	}
	w := c.App.Writer

	// List first, then read the tracked jobs (see state.Plan).
	execs, listed, problems := listResources(c, sc)
	f, _, err := sc.readState()
	if err != nil {
		return err
	}
	rec := state.Plan(f.Jobs, listed, sc.cfg.PaasFinishedJobsKeepResources)

	for _, a := range rec.Adopted {
		fmt.Fprintf(w, "pending job %d of runner %s: its resource %s (%s) exists and will be adopted\n", a.Key.JobID, sc.label(a.Key.Runner), a.Name, a.ID)
	}
	for _, k := range rec.Vanished {
		fmt.Fprintf(w, "job %d of runner %s: its resource no longer exists\n", k.JobID, sc.label(k.Runner))
	}
	for _, o := range rec.KeptOrphans {
		fmt.Fprintf(w, "orphan %s (%s) of runner %s: kept (paas_finished_jobs_keep_resources)\n", o.Name, o.ID, sc.label(o.Runner))
	}
	summary := fmt.Sprintf("%d orphan(s) would be deleted", len(rec.Orphans))
	if dryRun {
		for _, o := range rec.Orphans {
			fmt.Fprintf(w, "orphan %s (%s) of runner %s: would delete\n", o.Name, o.ID, sc.label(o.Runner))
		}
	} else {
		deleted, errs := deleteOrphans(c, sc, execs, rec.Orphans)
		problems = append(problems, errs...)
		summary = fmt.Sprintf("%d orphan(s) deleted", deleted)
	}
	fmt.Fprintf(w, "%s, %d kept, %d vanished, %d to adopt\n", summary, len(rec.KeptOrphans), len(rec.Vanished), len(rec.Adopted))
	if len(problems) > 0 {
		return cli.Exit(errors.Join(problems...).Error(), 1)
	}
	return nil
}

// listResources builds every runner's executor and lists its resources,
// keyed by runner short id. A runner that cannot be listed is left out of
// listed (so it is not judged) and reported in problems.
func listResources(c *cli.Context, sc *stateConfig) (map[string]executors.Executor, map[string][]state.Listed, []error) {
	execs := map[string]executors.Executor{}
	listed := map[string][]state.Listed{}
	var problems []error
	for i := range sc.cfg.Runners {
		r := &sc.cfg.Runners[i]
		rlog := log.WithField("runner", r.Label())
		ex, err := executors.New(r, executors.Deps{
			Logger:      rlog,
			Coordinator: coordinator.New(r.URL, r.Token, coordinator.Options{Logger: rlog}),
		})
		if err != nil {
			problems = append(problems, fmt.Errorf("runner %s: %w", r.Label(), err))
			continue
		}
		ctx, cancel := context.WithTimeout(c.Context, stateListTimeout)
		list, err := ex.List(ctx)
		cancel()
		if err != nil {
			problems = append(problems, fmt.Errorf("runner %s: list resources: %w", r.Label(), err))
			continue
		}
		execs[r.ShortID()] = ex
		out := make([]state.Listed, 0, len(list))
		for _, l := range list {
			out = append(out, state.Listed{ID: l.ID, Name: l.Name})
		}
		listed[r.ShortID()] = out
		fmt.Fprintf(c.App.Writer, "runner %s: %d resource(s) listed\n", r.Label(), len(list))
	}
	return execs, listed, problems
}

// deleteOrphans decommissions orphans, printing one line each.
func deleteOrphans(c *cli.Context, sc *stateConfig, execs map[string]executors.Executor, orphans []state.Orphan) (int, []error) {
	deleted := 0
	var problems []error
	for _, o := range orphans {
		if err := deleteOrphan(c, execs[o.Runner], o); err != nil {
			problems = append(problems, fmt.Errorf("runner %s: delete orphan %s: %w", sc.label(o.Runner), o.Name, err))
			fmt.Fprintf(c.App.Writer, "orphan %s (%s) of runner %s: NOT deleted: %v\n", o.Name, o.ID, sc.label(o.Runner), err)
			continue
		}
		deleted++
		fmt.Fprintf(c.App.Writer, "orphan %s (%s) of runner %s: deleted\n", o.Name, o.ID, sc.label(o.Runner))
	}
	return deleted, problems
}

// deleteOrphan finds the listed resource by name and decommissions it.
func deleteOrphan(c *cli.Context, ex executors.Executor, o state.Orphan) error {
	ctx, cancel := context.WithTimeout(c.Context, stateListTimeout)
	defer cancel()
	res, err := ex.Adopt(ctx, o.Name, nil)
	if err != nil {
		return fmt.Errorf("find resource: %w", err)
	}
	if res == nil {
		return nil // already gone
	}
	if err := ex.Decommission(ctx, res); err != nil {
		return fmt.Errorf("decommission: %w", err)
	}
	return nil
}
