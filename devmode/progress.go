package devmode

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/dispatcher"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// jobProgress is what the progress display knows of one job.
type jobProgress struct {
	id       int64
	name     string
	flavor   string
	weight   float64
	phase    string
	started  time.Time
	ended    time.Time
	reported string // last line printed (non-interactive)
}

// progress renders the live view of the demo.
type progress struct {
	out         io.Writer
	interactive bool
	start       time.Time
	jobs        []*jobProgress
	byID        map[int64]*jobProgress
	drawn       int // lines drawn last time (interactive)
	quota       string
	lastQuota   string // last quota line printed (non-interactive)
}

func newProgress(out io.Writer, interactive bool, jobs []JobResult) *progress {
	p := &progress{out: out, interactive: interactive, start: time.Now(), byID: map[int64]*jobProgress{}}
	for _, j := range jobs {
		jp := &jobProgress{id: j.ID, name: j.Name, flavor: j.Flavor, phase: "queued", weight: demoWeight(j.Flavor)}
		if jp.flavor == "" {
			jp.flavor = "default"
		}
		p.jobs = append(p.jobs, jp)
		p.byID[j.ID] = jp
	}
	return p
}

// update reads the fake and the dispatcher; it reports whether every job is
// over and no resource is left.
func (p *progress) update(fake *gitlabfake.Server, snap dispatcher.Snapshot) bool {
	now := time.Now()
	tracked := map[int64]dispatcher.JobView{}
	for _, jv := range snap.Jobs {
		tracked[jv.JobID] = jv
	}
	done := len(snap.Jobs) == 0
	for _, jp := range p.jobs {
		fj, _ := fake.Job(jp.id)
		jv, isTracked := tracked[jp.id]
		if isTracked {
			jp.track(jv, now)
		}
		jp.phase = phaseOf(fj, jv, isTracked)
		if finalState(fj.State) {
			jp.finish(now)
		} else {
			done = false
		}
	}
	l := snap.Ledger
	p.quota = fmt.Sprintf("quota %.2f / %.2f weight, %d / %d jobs, %d provisioning", l.WeightUsed, l.WeightQuota, l.Jobs, l.MaxJobs, l.Provisioning)
	return done
}

// track records what the dispatcher says of a tracked job.
func (jp *jobProgress) track(jv dispatcher.JobView, now time.Time) {
	if jv.ExpectedWeight > 0 {
		jp.weight = jv.ExpectedWeight
	}
	if !jv.AcquiredAt.IsZero() && (jp.started.IsZero() || jv.AcquiredAt.Before(jp.started)) {
		jp.started = jv.AcquiredAt
	}
	if jp.started.IsZero() {
		jp.started = now
	}
}

// finish records the first time the job was seen over.
func (jp *jobProgress) finish(now time.Time) {
	if jp.ended.IsZero() {
		jp.ended = now
		if jp.started.IsZero() {
			jp.started = now
		}
	}
}

// phaseOf is the phase shown for a job: its final state (and whether its
// resource is still being cleaned up), else the dispatcher's phase, else
// what the fake says.
func phaseOf(fj gitlabfake.Job, jv dispatcher.JobView, tracked bool) string {
	switch {
	case finalState(fj.State):
		phase := fj.State
		if fj.FailureReason != "" {
			phase += " (" + fj.FailureReason + ")"
		}
		if tracked {
			phase += ", cleaning up"
		}
		return phase
	case tracked:
		return jv.Phase
	case fj.State == gitlabfake.StateRunning:
		return "acquired"
	default:
		return "queued"
	}
}

func (jp *jobProgress) elapsed(now time.Time) time.Duration {
	switch {
	case jp.started.IsZero():
		return 0
	case !jp.ended.IsZero():
		return jp.ended.Sub(jp.started)
	default:
		return now.Sub(jp.started)
	}
}

func (jp *jobProgress) weightText() string {
	if jp.weight == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", jp.weight)
}

// render draws the table (interactive) or prints changed lines.
func (p *progress) render() {
	now := time.Now()
	if !p.interactive {
		for _, jp := range p.jobs {
			line := fmt.Sprintf("job %d %-18s flavor %-7s weight %-5s %s", jp.id, jp.name, jp.flavor, jp.weightText(), jp.phase)
			if line != jp.reported {
				jp.reported = line
				fmt.Fprintf(p.out, "[%6.1fs] %s\n", now.Sub(p.start).Seconds(), line)
			}
		}
		if p.quota != p.lastQuota {
			p.lastQuota = p.quota
			fmt.Fprintf(p.out, "[%6.1fs] %s\n", now.Sub(p.start).Seconds(), p.quota)
		}
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	lines := []string{fmt.Sprintf("%-8s %-18s %-7s %-6s %-34s %s", "JOB", "NAME", "FLAVOR", "WEIGHT", "PHASE", "ELAPSED")}
	for _, jp := range p.jobs {
		lines = append(lines, fmt.Sprintf("%-8d %-18s %-7s %-6s %-34s %5.1fs", jp.id, jp.name, jp.flavor, jp.weightText(), jp.phase, jp.elapsed(now).Seconds()))
	}
	lines = append(lines, p.quota)
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteString("\n")
	}
	p.drawn = len(lines)
	fmt.Fprint(p.out, b.String())
}

// watch refreshes the view until the pipeline is over or ctx ends.
func (p *progress) watch(ctx context.Context, fake *gitlabfake.Server, d *dispatcher.Dispatcher) error {
	period := 100 * time.Millisecond
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		done := p.update(fake, d.Snapshot())
		p.render()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", errTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// final copies the outcome of every job into sum.
func (p *progress) final(fake *gitlabfake.Server, sum *Summary) {
	for i := range sum.Jobs {
		j := &sum.Jobs[i]
		fj, _ := fake.Job(j.ID)
		j.State, j.FailureReason = fj.State, fj.FailureReason
		if jp := p.byID[j.ID]; jp != nil {
			j.Weight = jp.weight
			j.Duration = jp.elapsed(time.Now())
		}
	}
}

func printSummary(out io.Writer, sum Summary) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNAME\tFLAVOR\tWEIGHT\tSTATE\tEXPECTED\tDURATION\tLOG")
	for _, j := range sum.Jobs {
		flavor := j.Flavor
		if flavor == "" {
			flavor = "default"
		}
		weight := "-"
		if j.Weight > 0 {
			weight = fmt.Sprintf("%.2f", j.Weight)
		}
		state := j.State
		if j.FailureReason != "" {
			state += " (" + j.FailureReason + ")"
		}
		mark := "yes"
		if !j.Expected() {
			mark = "NO (want " + j.Want + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", j.ID, j.Name, flavor, weight, state, mark, j.Duration.Seconds(), j.LogPath)
	}
	_ = tw.Flush()
	if sum.AllExpected() {
		fmt.Fprintln(out, "\nEvery job reached its expected outcome.")
	} else {
		fmt.Fprintln(out, "\nSome jobs did NOT reach their expected outcome; see their logs.")
	}
}

// demoWeight is the weight of a demo flavor ("" = the default S), 0 when
// the flavor is not in the table.
func demoWeight(flavor string) float64 {
	if flavor == "" {
		flavor = demoDefaultFlavor
	}
	for _, f := range demoFlavors {
		if f.Name == flavor {
			return quota.Flavor{MemoryMiB: f.MiB}.Weight()
		}
	}
	return 0
}
