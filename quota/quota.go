package quota

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// FlavorVariable is the job variable a job chooses its flavor with.
const FlavorVariable = "CI_CLEVER_CLOUD_FLAVOR"

// Flavor is one instance size.
type Flavor struct {
	// Name is the user-facing name (XS, M, 3XL).
	Name string
	// APIName is the backend's name (heptapod-runner-M).
	APIName string
	// MemoryMiB is the RAM in MiB.
	MemoryMiB int
	// CPUs is the number of vCPUs.
	CPUs float64
}

// Weight returns (RAM GiB)^1.25.
func (f Flavor) Weight() float64 {
	return math.Pow(float64(f.MemoryMiB)/1024, 1.25)
}

// Flavors maps user-facing names to flavors.
type Flavors map[string]Flavor

// Names returns the flavor names sorted by weight, then by name: the order
// shown to users in error messages ("[XS S M L XL 2XL 3XL]").
func (f Flavors) Names() []string {
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(f[a].Weight(), f[b].Weight()); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return names
}

// Lookup returns the flavor called name. An unknown name is a *FlavorError
// listing the allowed flavors.
func (f Flavors) Lookup(name string) (Flavor, error) {
	fl, ok := f[name]
	if !ok {
		return Flavor{}, &FlavorError{
			Requested: name,
			Allowed:   f.Names(),
			Msg: fmt.Sprintf("Flavor '%s' is not available, possible choices are %s",
				name, formatNames(f.Names())),
		}
	}
	if fl.Name == "" {
		fl.Name = name
	}
	return fl, nil
}

// Max returns the heaviest flavor (ties broken by the greatest name), and
// false when f is empty.
func (f Flavors) Max() (Flavor, bool) {
	names := f.Names()
	if len(names) == 0 {
		return Flavor{}, false
	}
	fl, _ := f.Lookup(names[len(names)-1])
	return fl, true
}

// MaxWeight returns the weight of the heaviest flavor, or 0 when f is empty.
func (f Flavors) MaxWeight() float64 {
	fl, ok := f.Max()
	if !ok {
		return 0
	}
	return fl.Weight()
}

// FlavorError is an invalid flavor choice. Its Error text is meant for the
// job log: it names the requested flavor and the allowed ones.
type FlavorError struct {
	// Requested is the flavor the job asked for (or the default it got).
	Requested string
	// Allowed lists the flavors the job may choose, lightest first. When a
	// max flavor applies, heavier flavors are left out.
	Allowed []string
	// Max is the runner's max flavor when the error is about exceeding it.
	Max string
	// Msg is the user-readable message.
	Msg string
}

// Error implements error.
func (e *FlavorError) Error() string { return e.Msg }

// Select chooses the flavor of a job (reference §5.3): requested is the
// value of CI_CLEVER_CLOUD_FLAVOR ("" when unset, then def applies); max,
// when not empty, is the heaviest flavor the runner accepts. Every failure
// is a *FlavorError whose message may be written into the job log.
func Select(f Flavors, requested, def, maxName string) (Flavor, error) {
	name := requested
	if name == "" {
		name = def
	}
	fl, ok := f[name]
	if !ok {
		return Flavor{}, &FlavorError{
			Requested: name,
			Allowed:   f.Names(),
			Msg: fmt.Sprintf("Selected flavor '%s' is not available, possible choices are %s",
				name, formatNames(f.Names())),
		}
	}
	if fl.Name == "" {
		fl.Name = name
	}
	if maxName == "" {
		return fl, nil
	}
	maxFl, ok := f[maxName]
	if !ok {
		return Flavor{}, &FlavorError{
			Requested: name,
			Allowed:   f.Names(),
			Max:       maxName,
			Msg: fmt.Sprintf("This runner's maximum flavor '%s' is not available "+
				"(possible choices are %s): the runner is misconfigured, "+
				"please contact its administrators or use another runner",
				maxName, formatNames(f.Names())),
		}
	}
	if fl.Weight() > maxFl.Weight() {
		allowed := make([]string, 0, len(f))
		for _, n := range f.Names() {
			if f[n].Weight() <= maxFl.Weight() {
				allowed = append(allowed, n)
			}
		}
		return Flavor{}, &FlavorError{
			Requested: name,
			Allowed:   allowed,
			Max:       maxName,
			Msg: fmt.Sprintf("Selected flavor '%s' exceeds the maximum flavor '%s' of this runner. "+
				"Please change %s to one of %s, or use another runner",
				name, maxName, FlavorVariable, formatNames(allowed)),
		}
	}
	return fl, nil
}

// Quota returns the weighted quota of [quota_computation]:
// weight(referenceFlavor) × jobs.
func Quota(f Flavors, referenceFlavor string, jobs int) (float64, error) {
	if jobs <= 0 {
		return 0, fmt.Errorf("compute weighted quota: reference_jobs_count must be positive, got %d", jobs)
	}
	fl, err := f.Lookup(referenceFlavor)
	if err != nil {
		return 0, fmt.Errorf("compute weighted quota: reference_flavor: %w", err)
	}
	return fl.Weight() * float64(jobs), nil
}

// DefaultCleverFlavors returns the reconstruction of Clever Cloud's
// heptapod-runner flavors (reference §5.1; the live table comes from the
// API): XS 2 GiB/1 CPU, S 4/2, M 8/4, L 12/6, XL 16/8, 2XL 24/12, 3XL
// 32/16, weights 2.38 to 76.1. For tests and development only.
func DefaultCleverFlavors() Flavors {
	table := []struct {
		name string
		gib  int
		cpus float64
	}{
		{"XS", 2, 1},
		{"S", 4, 2},
		{"M", 8, 4},
		{"L", 12, 6},
		{"XL", 16, 8},
		{"2XL", 24, 12},
		{"3XL", 32, 16},
	}
	f := make(Flavors, len(table))
	for _, t := range table {
		f[t.name] = Flavor{
			Name:      t.name,
			APIName:   "heptapod-runner-" + t.name,
			MemoryMiB: t.gib * 1024,
			CPUs:      t.cpus,
		}
	}
	return f
}

func formatNames(names []string) string {
	return "[" + strings.Join(names, " ") + "]"
}
