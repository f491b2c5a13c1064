package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/internal/atomicfile"
)

// Defaults of `paas-runner register` for a configuration file it creates.
const (
	registerDefaultStateFile = "/var/lib/paas-runner/state.json"
	registerDefaultFlavor    = config.DefaultCCDefaultFlavor
)

// registerExecutors are the executors `register` offers, with their labels.
var registerExecutors = []struct{ name, label string }{
	{config.ExecutorCleverDocker, "Clever Cloud Docker"},
	{config.ExecutorLocalDocker, "Local Docker Engine, for testing and development only"},
	{config.ExecutorLocalProcess, "Local processes, for testing and development only"},
}

func registerCommand() *cli.Command {
	return withTrailingFlags(&cli.Command{
		Name:      "register",
		Usage:     "register a runner with a GitLab/Heptapod coordinator and add it to CONFIG",
		ArgsUsage: "CONFIG",
		Description: "With a runner authentication token (glrt-…, created in GitLab), the token is verified\n" +
			"(POST /api/v4/runners/verify with this machine's system_id). With a legacy registration\n" +
			"token, a runner is registered (POST /api/v4/runners). CONFIG is created when absent;\n" +
			"otherwise a [[runners]] section is appended and the rest of the file is kept byte for\n" +
			"byte. Missing values are prompted for unless --non-interactive. Prefer the environment\n" +
			"variables to the token flags: process arguments are visible to other users.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Aliases: []string{"u"}, EnvVars: []string{"CI_SERVER_URL"}, Usage: "coordinator URL, e.g. https://gitlab.example.com"},
			&cli.StringFlag{Name: "token", Aliases: []string{"t"}, EnvVars: []string{"CI_SERVER_TOKEN"}, Usage: "runner authentication token (glrt-…) of a runner created in GitLab"},
			&cli.StringFlag{Name: "registration-token", Aliases: []string{"r"}, EnvVars: []string{"REGISTRATION_TOKEN"}, Usage: "legacy (deprecated) registration token"},
			&cli.StringFlag{Name: "name", Aliases: []string{"description"}, EnvVars: []string{"RUNNER_NAME"}, Usage: "runner name (local, unique in CONFIG)"},
			&cli.StringFlag{Name: "executor", Aliases: []string{"e"}, EnvVars: []string{"RUNNER_EXECUTOR"}, Usage: "clever-docker, local-docker or local-process"},
			&cli.BoolFlag{Name: "non-interactive", Aliases: []string{"n"}, EnvVars: []string{"REGISTER_NON_INTERACTIVE"}, Usage: "never prompt; fail on missing values"},
			&cli.StringFlag{Name: "tag-list", EnvVars: []string{"RUNNER_TAG_LIST"}, Usage: "comma-separated tags (legacy registration only)"},
			&cli.BoolFlag{Name: "run-untagged", EnvVars: []string{"REGISTER_RUN_UNTAGGED"}, Usage: "run untagged jobs (legacy registration only; default true without tags)"},
			&cli.BoolFlag{Name: "locked", Value: true, EnvVars: []string{"REGISTER_LOCKED"}, Usage: "lock the runner to its project (legacy registration only)"},
			&cli.BoolFlag{Name: "paused", EnvVars: []string{"REGISTER_PAUSED"}, Usage: "create the runner paused (legacy registration only)"},
			&cli.StringFlag{Name: "state-file", Aliases: []string{"state-file-path"}, EnvVars: []string{"PAAS_RUNNER_STATE_FILE"}, Usage: "state_file of a created CONFIG (default " + registerDefaultStateFile + ")"},
			&cli.IntFlag{Name: "concurrent", Aliases: []string{"max-concurrency"}, EnvVars: []string{"PAAS_RUNNER_CONCURRENT"}, Usage: "concurrent of a created CONFIG (default " + strconv.Itoa(config.DefaultConcurrent) + ")"},
		},
		Action: runRegister,
	})
}

// withTrailingFlags lets a command's flags follow its CONFIG argument
// (`paas-runner unregister CONFIG --name N`), which urfave/cli v2 would
// otherwise take as positional arguments: the arguments are parsed again
// with CONFIG moved behind the flags.
func withTrailingFlags(cmd *cli.Command) *cli.Command {
	act := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		args := c.Args().Slice()
		if len(args) < 2 || strings.HasPrefix(args[0], "-") || !slices.ContainsFunc(args[1:], func(a string) bool { return strings.HasPrefix(a, "-") }) {
			return act(c)
		}
		reordered := append(append(slices.Clone(args[1:]), "--"), args[0])
		sub := &cli.App{
			Name: c.App.Name + " " + cmd.Name, Usage: cmd.Usage, ArgsUsage: cmd.ArgsUsage, Flags: cmd.Flags, Action: act,
			Reader: c.App.Reader, Writer: c.App.Writer, ErrWriter: c.App.ErrWriter, ExitErrHandler: c.App.ExitErrHandler,
			HideHelpCommand: true, HideVersion: true,
		}
		return sub.RunContext(c.Context, append([]string{sub.Name}, reordered...))
	}
	return cmd
}

// registration is what `register` gathers before contacting the
// coordinator.
type registration struct {
	path     string
	existing []byte // nil when the file is created
	url      string
	name     string
	executor string
	token    config.Secret // glrt- authentication token
	regToken config.Secret // legacy registration token
	opts     coordinator.RegisterOptions
	state    string
	conc     int
}

func runRegister(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("register: exactly one CONFIG argument is required", 2)
	}
	reg := &registration{path: c.Args().First()}
	p := &prompter{in: bufio.NewReader(c.App.Reader), out: c.App.Writer, interactive: !c.Bool("non-interactive")}
	names, err := reg.readExisting()
	if err != nil {
		return cli.Exit("register: "+err.Error(), 1)
	}
	if err := reg.gather(c, p, names); err != nil {
		return cli.Exit("register: "+err.Error(), 1)
	}
	if err := reg.run(c.Context, c.App.Writer); err != nil {
		return cli.Exit("register: "+err.Error(), 1)
	}
	return nil
}

// readExisting reads CONFIG when it exists and returns its runner names.
func (reg *registration) readExisting() ([]string, error) {
	data, err := os.ReadFile(reg.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid configuration file, not touching it: %w", reg.path, err)
	}
	reg.existing = data
	names := make([]string, 0, len(cfg.Runners))
	for _, r := range cfg.Runners {
		names = append(names, r.Name)
	}
	return names, nil
}

// gather validates the flags and prompts for what is missing.
func (reg *registration) gather(c *cli.Context, p *prompter, names []string) error {
	var err error
	if reg.existing == nil {
		fmt.Fprintf(p.out, "Creating the brand new configuration file %s\n", reg.path)
		if reg.state, err = p.ask("State file path", "state-file", c.String("state-file"), registerDefaultStateFile, validStateFile); err != nil {
			return err
		}
		def := strconv.Itoa(config.DefaultConcurrent)
		given := ""
		if c.IsSet("concurrent") {
			given = strconv.Itoa(c.Int("concurrent"))
		}
		s, err := p.ask("Maximum number of concurrent jobs (concurrent)", "concurrent", given, def, validPositive)
		if err != nil {
			return err
		}
		reg.conc, _ = strconv.Atoi(s)
	}
	if reg.url, err = p.ask("Coordinator URL (e.g. https://gitlab.example.com)", "url", c.String("url"), "", validURL); err != nil {
		return err
	}
	if err := reg.gatherToken(c, p); err != nil {
		return err
	}
	uniqueName := func(s string) error {
		if err := validNonEmpty(s); err != nil {
			return err
		}
		if slices.Contains(names, s) {
			return fmt.Errorf("a runner named %q is already in the configuration file", s)
		}
		return nil
	}
	if reg.name, err = p.ask("Runner name", "name", c.String("name"), "", uniqueName); err != nil {
		return err
	}
	if p.interactive && c.String("executor") == "" {
		fmt.Fprintln(p.out, "Executors:")
		for _, e := range registerExecutors {
			fmt.Fprintf(p.out, "  %-14s %s\n", e.name, e.label)
		}
	}
	if reg.executor, err = p.ask("Executor", "executor", c.String("executor"), "", validExecutor); err != nil {
		return err
	}
	return nil
}

// gatherToken obtains either a glrt- token or a registration token, and the
// server-side properties that only legacy registration accepts.
func (reg *registration) gatherToken(c *cli.Context, p *prompter) error {
	serverSide := []string{"tag-list", "run-untagged", "locked", "paused"}
	tok, rtok := c.String("token"), c.String("registration-token")
	switch {
	case tok != "" && rtok != "":
		return errors.New("give --token or --registration-token, not both")
	case tok != "":
		if !coordinator.IsCreatedRunnerToken(tok) {
			return errors.New("--token takes a runner authentication token starting with glrt-; use --registration-token for a registration token")
		}
	case rtok != "":
		if coordinator.IsCreatedRunnerToken(rtok) {
			tok, rtok = rtok, ""
			fmt.Fprintln(p.out, "The registration token is a runner authentication token (glrt-…): verifying it instead of registering.")
		}
	default:
		s, err := p.ask("Runner authentication token (glrt-…) or registration token", "token", "", "", validNonEmpty)
		if err != nil {
			return err
		}
		if coordinator.IsCreatedRunnerToken(s) {
			tok = s
		} else {
			rtok = s
		}
	}
	if tok != "" {
		for _, f := range serverSide {
			if c.IsSet(f) {
				return fmt.Errorf("--%s cannot be used with a glrt- token: it is set on the runner in GitLab", f)
			}
		}
		reg.token = config.Secret(tok)
		return nil
	}
	reg.regToken = config.Secret(rtok)
	for t := range strings.SplitSeq(c.String("tag-list"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			reg.opts.TagList = append(reg.opts.TagList, t)
		}
	}
	reg.opts.RunUntagged = c.Bool("run-untagged") || (!c.IsSet("run-untagged") && len(reg.opts.TagList) == 0)
	reg.opts.Locked = c.Bool("locked")
	reg.opts.Paused = c.Bool("paused")
	return nil
}

// run contacts the coordinator then writes the configuration file. When the
// file cannot be written, the registration is undone on the server.
func (reg *registration) run(ctx context.Context, out io.Writer) error {
	sysID, sysIDExists, err := coordinator.PeekSystemID(reg.path)
	if err != nil {
		return err
	}
	var (
		rr   coordinator.RegisteredRunner
		undo func(context.Context) error
	)
	if !reg.token.IsZero() {
		cl := coordinator.New(reg.url, reg.token, cliClientOptions(sysID))
		rr, err = cl.Verify(ctx)
		if err != nil {
			return explainCoordinatorError("verify the runner authentication token", reg.url, err)
		}
		if rr.ID == 0 {
			return fmt.Errorf("the coordinator at %s verified the token but returned no runner id (GitLab < 15.9?)", reg.url)
		}
		undo = cl.DeleteManager
	} else {
		reg.opts.Description = reg.name
		rr, err = coordinator.New(reg.url, reg.regToken, cliClientOptions(sysID)).Register(ctx, reg.opts)
		if err != nil {
			return explainCoordinatorError("register the runner", reg.url, err)
		}
		undo = coordinator.New(reg.url, rr.Token, cliClientOptions(sysID)).DeleteRunner
	}
	data := reg.render(rr)
	if err := writeFileAtomic(reg.path, data); err != nil {
		if uerr := undo(context.WithoutCancel(ctx)); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo the registration on the server: %w", uerr))
		}
		return err
	}
	if !sysIDExists && !reg.token.IsZero() {
		if err := coordinator.SaveSystemID(reg.path, sysID); err != nil {
			fmt.Fprintf(out, "Warning: %v\n", err)
		}
	}
	fmt.Fprintf(out, "Runner %q (id %d) registered with %s and added to %s.\n", reg.name, rr.ID, reg.url, reg.path)
	if reg.executor == config.ExecutorCleverDocker {
		fmt.Fprintln(out, "Fill in the cc_* placeholders of the new section, then run `paas-runner config check "+reg.path+"`.")
	}
	if reg.existing != nil && !strings.Contains(string(reg.existing), "[quota_computation]") {
		fmt.Fprintln(out, "Warning: the file has no [quota_computation] section; paas-runner will not start without one.")
	}
	return nil
}

// cliClientOptions are the coordinator client options of the CLI commands.
func cliClientOptions(systemID string) coordinator.Options {
	return coordinator.Options{Logger: log, SystemID: systemID, Version: version, Revision: revision, RetryMax: 2}
}

// explainCoordinatorError turns a coordinator failure into an operator
// message (never holding a token).
func explainCoordinatorError(action, base string, err error) error {
	switch coordinator.StatusCode(err) {
	case 0:
		return fmt.Errorf("cannot %s: coordinator at %s unreachable: %w", action, base, err)
	case http.StatusForbidden:
		return fmt.Errorf("cannot %s: the coordinator at %s rejected the token (403 Forbidden)", action, base)
	case http.StatusGone:
		return fmt.Errorf("cannot %s: registration tokens are disabled on %s (410 Gone); "+
			"create the runner in GitLab and pass its glrt- token with --token", action, base)
	case http.StatusUnprocessableEntity:
		return fmt.Errorf("cannot %s: the runner is orphaned on %s (422): %w", action, base, err)
	}
	return fmt.Errorf("cannot %s: %w", action, err)
}

// render returns the whole new file content.
func (reg *registration) render(rr coordinator.RegisteredRunner) []byte {
	var b strings.Builder
	if reg.existing == nil {
		fmt.Fprintf(&b, `# paas-runner configuration, created by "paas-runner register".
# Every key and its default is documented in config.toml.example.

concurrent = %d
state_file = %s

# The weighted quota: weight(reference_flavor) × reference_jobs_count.
[quota_computation]
  reference_runner = %s
  reference_flavor = %s
  reference_jobs_count = %d
`, reg.conc, tomlString(reg.state), tomlString(reg.name), tomlString(registerDefaultFlavor), reg.conc)
	} else {
		b.Write(reg.existing)
		if len(reg.existing) > 0 && !strings.HasSuffix(string(reg.existing), "\n") {
			b.WriteString("\n")
		}
	}
	b.WriteString(renderRunner(reg.name, reg.url, reg.executor, rr))
	return []byte(b.String())
}

// renderRunner returns a `[[runners]]` section, preceded by a blank line.
func renderRunner(name, url, executor string, rr coordinator.RegisteredRunner) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n[[runners]]\n  name = %s\n  url = %s\n  id = %d\n  token = %s\n  executor = %s\n",
		tomlString(name), tomlString(url), rr.ID, tomlString(rr.Token.Reveal()), tomlString(executor))
	switch executor {
	case config.ExecutorCleverDocker:
		b.WriteString(`  # Clever Cloud organisation and token: uncomment and fill in, or set
  # cc_multi_tenant = true to read them from GitLab group custom attributes.
  # cc_orga_id = "orga_00000000-0000-0000-0000-000000000000"
  # cc_token = "CHANGE-ME"
  # cc_default_flavor = "M"
  # cc_max_flavor = "XL"
  [runners.docker]
    image = "debian:bookworm"
`)
	case config.ExecutorLocalDocker:
		b.WriteString(`  # Docker Engine to run jobs on (testing and development only).
  # host = "unix:///var/run/docker.sock"
  [runners.docker]
    image = "debian:bookworm"
`)
	case config.ExecutorLocalProcess:
		b.WriteString(`  # Directory under which each job gets its work directory (testing and
  # development only).
  # work_root = "/var/lib/paas-runner/jobs"
`)
	}
	return b.String()
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeFileAtomic replaces the configuration file path with data (mode
// 0600); on failure the original file is untouched.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// prompter asks for missing or invalid values.
type prompter struct {
	in          *bufio.Reader
	out         io.Writer
	interactive bool
}

// ask returns given when valid; otherwise it prompts (showing def, taken on
// an empty answer) until the answer is valid. Without interaction a missing
// value takes def, or is an error. Validation messages never repeat the
// value (it may be a token).
func (p *prompter) ask(label, flag, given, def string, valid func(string) error) (string, error) {
	if given != "" {
		err := valid(given)
		if err == nil {
			return given, nil
		}
		if !p.interactive {
			return "", fmt.Errorf("--%s: %w", flag, err)
		}
		fmt.Fprintf(p.out, "Invalid --%s: %v\n", flag, err)
	} else if !p.interactive {
		if def != "" {
			return def, nil
		}
		return "", fmt.Errorf("--%s is required with --non-interactive", flag)
	}
	for {
		if def != "" {
			fmt.Fprintf(p.out, "%s [%s]: ", label, def)
		} else {
			fmt.Fprintf(p.out, "%s: ", label)
		}
		line, rerr := p.in.ReadString('\n')
		line = strings.TrimSpace(line)
		if line == "" && def != "" && rerr == nil {
			line = def
		}
		if line != "" {
			verr := valid(line)
			if verr == nil {
				return line, nil
			}
			fmt.Fprintf(p.out, "Invalid value: %v\n", verr)
		}
		if rerr != nil {
			return "", fmt.Errorf("no valid value for --%s on standard input", flag)
		}
	}
}

func validNonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	if u.User != nil || u.RawQuery != "" {
		return errors.New("must not hold credentials or a query")
	}
	return nil
}

func validExecutor(s string) error {
	for _, e := range registerExecutors {
		if e.name == s {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s, %s, %s", s,
		registerExecutors[0].name, registerExecutors[1].name, registerExecutors[2].name)
}

func validStateFile(s string) error {
	if !filepath.IsAbs(s) {
		return errors.New("must be an absolute path")
	}
	return nil
}

func validPositive(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return errors.New("must be a positive integer")
	}
	return nil
}

// runnerSection is the text span [start, end) of one `[[runners]]` table
// (with its sub-tables) in a configuration file.
type runnerSection struct{ start, end int }

// runnerSections finds the `[[runners]]` sections of a TOML text, in file
// order, without parsing values: a section runs from its header (and the
// column-0 comment lines directly above it) to the next table header that is
// not one of its sub-tables ([runners.x]); column-0 comments directly before
// that header are left to what follows. Multi-line strings are skipped.
func runnerSections(text string) []runnerSection {
	lines := tomlLines(text)
	var out []runnerSection
	cur, first := -1, -1 // header line and first line (leading comments) of the open section
	closeAt := func(i int) {
		if cur < 0 {
			return
		}
		// Column-0 comments (and the blank lines around them) right before
		// the next header introduce what follows, not this section.
		j := i
		for j > cur+1 && (lines[j-1].blank || lines[j-1].cmt0) {
			j--
		}
		endLine := i
		for k := j; k < i; k++ {
			if lines[k].cmt0 {
				endLine = k
				break
			}
		}
		end := len(text)
		if endLine < len(lines) {
			end = lines[endLine].off
		}
		out = append(out, runnerSection{start: lines[first].off, end: end})
		cur = -1
	}
	for i, l := range lines {
		if l.header == "" {
			continue
		}
		if l.header == "[[runners]]" {
			closeAt(i)
			cur, first = i, i
			// Column-0 comments directly above the header belong to it.
			for first > 0 && lines[first-1].cmt0 && lines[first-1].header == "" {
				first--
			}
			continue
		}
		if !strings.HasPrefix(l.header, "[runners.") && !strings.HasPrefix(l.header, "[[runners.") {
			closeAt(i)
		}
	}
	closeAt(len(lines))
	return out
}

// tomlLine is what runnerSections needs of one line of a TOML text.
type tomlLine struct {
	off         int    // byte offset of the line in the text
	blank, cmt0 bool   // blank; a comment starting at column 0
	header      string // table header without spaces or comment, "" if none
}

// tomlLines splits a TOML text into lines; a line inside a multi-line string
// is never a header.
func tomlLines(text string) []tomlLine {
	var lines []tomlLine
	inMulti := ""
	for off := 0; off < len(text); {
		end := strings.IndexByte(text[off:], '\n')
		next := len(text)
		if end >= 0 {
			next = off + end + 1
		}
		raw := text[off:next]
		tr := strings.TrimSpace(raw)
		l := tomlLine{off: off, blank: tr == "", cmt0: strings.HasPrefix(raw, "#")}
		if inMulti == "" && strings.HasPrefix(tr, "[") {
			h := tr
			if i := strings.IndexByte(h, '#'); i >= 0 {
				h = strings.TrimSpace(h[:i])
			}
			l.header = strings.ReplaceAll(h, " ", "")
		}
		for _, q := range []string{`"""`, `'''`} {
			if (inMulti == "" || inMulti == q) && strings.Count(raw, q)%2 == 1 {
				if inMulti == "" {
					inMulti = q
				} else {
					inMulti = ""
				}
			}
		}
		lines = append(lines, l)
		off = next
	}
	return lines
}

// removeRunners returns data (parsed as cfg) without the runner sections
// whose index is in drop, after checking that the result still parses to exactly the runners
// that must remain (same url and token, same order).
func removeRunners(data []byte, cfg *config.Config, drop []int) ([]byte, error) {
	text := string(data)
	secs := runnerSections(text)
	if len(secs) != len(cfg.Runners) {
		return nil, fmt.Errorf("cannot edit the file safely: found %d [[runners]] headers for %d runners", len(secs), len(cfg.Runners))
	}
	var b strings.Builder
	prev := 0
	var keep []config.Runner
	for i, s := range secs {
		if slices.Contains(drop, i) {
			b.WriteString(text[prev:s.start])
			prev = s.end
			continue
		}
		keep = append(keep, cfg.Runners[i])
	}
	b.WriteString(text[prev:])
	out := []byte(b.String())
	after, err := config.Parse(out)
	if err != nil {
		return nil, fmt.Errorf("cannot edit the file safely: %w", err)
	}
	if len(after.Runners) != len(keep) {
		return nil, fmt.Errorf("cannot edit the file safely: %d runners left instead of %d", len(after.Runners), len(keep))
	}
	for i := range keep {
		if after.Runners[i].URL != keep[i].URL || after.Runners[i].Token != keep[i].Token || after.Runners[i].Name != keep[i].Name {
			return nil, fmt.Errorf("cannot edit the file safely: runners[%d] changed", i)
		}
	}
	return out, nil
}
