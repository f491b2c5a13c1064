package quota

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Sentinel errors of the Ledger. Admission errors wrap ErrWeightQuota,
// ErrConcurrency or ErrProvisioning with the numbers involved; match them
// with errors.Is.
var (
	// ErrWeightQuota: the weighted quota cannot take the weight.
	ErrWeightQuota = errors.New("weighted quota reached")
	// ErrConcurrency: the job count cap (concurrent) is reached.
	ErrConcurrency = errors.New("concurrent jobs limit reached")
	// ErrProvisioning: the cap on jobs still provisioning is reached.
	ErrProvisioning = errors.New("concurrent provisioning limit reached")
	// ErrUnknownEntry: the key is not in the ledger (a release of something
	// never reserved, or released twice).
	ErrUnknownEntry = errors.New("unknown ledger entry")
	// ErrDuplicateEntry: the key is already in the ledger.
	ErrDuplicateEntry = errors.New("duplicate ledger entry")
	// ErrNegative: a weight is negative or not a finite number.
	ErrNegative = errors.New("negative or invalid weight")
)

// Limits are the admission limits of a Ledger. A zero (or negative) field
// means "no limit" for that dimension; configuration validation is where
// zero values are refused.
type Limits struct {
	// WeightQuota caps the sum of the weights of the entries
	// ([quota_computation]).
	WeightQuota float64
	// MaxJobs caps the number of entries (concurrent).
	MaxJobs int
	// MaxProvisioning caps the entries not yet Started
	// (paas_max_concurrent_provisioning). It is a hard cap: Reserve never
	// goes beyond it.
	MaxProvisioning int
	// MinLaunchSpacing is the minimum time between two planned launches
	// (paas_min_seconds_between_launches).
	MinLaunchSpacing time.Duration
}

// Snapshot is an immutable copy of a Ledger's totals, for metrics,
// statistics and invariant checks.
type Snapshot struct {
	// WeightQuota is the configured quota (0: no limit).
	WeightQuota float64
	// WeightUsed is the sum of the weights of the entries. It may exceed
	// WeightQuota after Adjust or ForceReserve: that is a fact reported, not
	// an error.
	WeightUsed float64
	// Jobs is the number of entries.
	Jobs int
	// MaxJobs is the configured job cap (0: no limit).
	MaxJobs int
	// Provisioning is the number of entries not yet Started.
	Provisioning int
	// MaxProvisioning is the configured provisioning cap (0: no limit).
	MaxProvisioning int
	// Kept is the number of resources that still exist but were released
	// from the quota on purpose (paas_finished_jobs_keep_resources,
	// paas_decommission_launch_failures = false).
	Kept int
}

// weightUnit is the fixed-point resolution of the ledger: weights are
// summed as integers of micro-weights, so that releasing everything
// returns exactly zero whatever the order of the operations.
const weightUnit = 1e6

// quotaSlack is the tolerance of the quota comparison, in micro-weights,
// absorbing the rounding of weights computed as flavor weight × n.
const quotaSlack = 16

type entry struct {
	weight       float64 // as given, returned by Weight
	micro        int64   // weight in micro-weights, what the totals sum
	provisioning bool
}

// Ledger is the admission ledger of the dispatcher: one entry per tracked
// job (or per in-flight poll reservation), each with a weight and a
// provisioning flag, checked against Limits.
//
// A Ledger does no I/O and starts no goroutine. It is NOT safe for
// concurrent use: the dispatcher's single owner goroutine owns it and
// publishes Snapshots to readers.
//
// Every removal names the entry it removes, so totals can never go
// negative: releasing an unknown or already released key is an
// ErrUnknownEntry error, never a double decrement (reference §12 items
// 24–26).
type Ledger struct {
	limits       Limits
	entries      map[string]*entry
	usedMicro    int64
	provisioning int
	kept         map[string]struct{}
	lastLaunch   time.Time
}

// NewLedger returns an empty ledger enforcing l.
func NewLedger(l Limits) *Ledger {
	return &Ledger{
		limits:  l,
		entries: make(map[string]*entry),
		kept:    make(map[string]struct{}),
	}
}

// SetLimits replaces the limits (configuration reload). Existing entries
// stay, even when they now exceed the limits; only new reservations are
// refused.
func (l *Ledger) SetLimits(lim Limits) { l.limits = lim }

// Limits returns the current limits.
func (l *Ledger) Limits() Limits { return l.limits }

func toMicro(weight float64) (int64, error) {
	if math.IsNaN(weight) || math.IsInf(weight, 0) || weight < 0 {
		return 0, fmt.Errorf("%w: %v", ErrNegative, weight)
	}
	return int64(math.Round(weight * weightUnit)), nil
}

func fromMicro(m int64) float64 { return float64(m) / weightUnit }

// CanAdmit returns nil if Reserve(key, weight) of a new key would succeed
// now, otherwise the error Reserve would return.
func (l *Ledger) CanAdmit(weight float64) error {
	micro, err := toMicro(weight)
	if err != nil {
		return err
	}
	return l.admit(weight, micro)
}

func (l *Ledger) admit(weight float64, micro int64) error {
	if l.limits.MaxJobs > 0 && len(l.entries) >= l.limits.MaxJobs {
		return fmt.Errorf("%w: %d jobs tracked, concurrent = %d",
			ErrConcurrency, len(l.entries), l.limits.MaxJobs)
	}
	if l.limits.MaxProvisioning > 0 && l.provisioning >= l.limits.MaxProvisioning {
		return fmt.Errorf("%w: %d jobs provisioning, paas_max_concurrent_provisioning = %d",
			ErrProvisioning, l.provisioning, l.limits.MaxProvisioning)
	}
	if l.limits.WeightQuota > 0 {
		quota := int64(math.Round(l.limits.WeightQuota * weightUnit))
		if l.usedMicro+micro > quota+quotaSlack {
			return fmt.Errorf("%w: %.3f used + %.3f requested > quota %.3f",
				ErrWeightQuota, fromMicro(l.usedMicro), weight, l.limits.WeightQuota)
		}
	}
	return nil
}

// Reserve adds a new entry of the given weight, counted as provisioning. It
// refuses (with an error wrapping ErrWeightQuota, ErrConcurrency or
// ErrProvisioning) when any limit would be exceeded, and refuses an
// existing key with ErrDuplicateEntry.
func (l *Ledger) Reserve(key string, weight float64) error {
	micro, err := toMicro(weight)
	if err != nil {
		return fmt.Errorf("reserve %q: %w", key, err)
	}
	if _, ok := l.entries[key]; ok {
		return fmt.Errorf("reserve %q: %w", key, ErrDuplicateEntry)
	}
	if err := l.admit(weight, micro); err != nil {
		return fmt.Errorf("reserve %q: %w", key, err)
	}
	l.add(key, weight, micro)
	return nil
}

// ForceReserve adds a new entry, counted as provisioning, without checking
// the limits: it restores tracked jobs after a restart (call Started for
// those already running). Duplicates are still refused.
func (l *Ledger) ForceReserve(key string, weight float64) error {
	micro, err := toMicro(weight)
	if err != nil {
		return fmt.Errorf("force reserve %q: %w", key, err)
	}
	if _, ok := l.entries[key]; ok {
		return fmt.Errorf("force reserve %q: %w", key, ErrDuplicateEntry)
	}
	l.add(key, weight, micro)
	return nil
}

func (l *Ledger) add(key string, weight float64, micro int64) {
	l.entries[key] = &entry{weight: weight, micro: micro, provisioning: true}
	l.usedMicro += micro
	l.provisioning++
}

// Adjust sets the weight of an existing entry: to the job's expected weight
// once a poll reservation got a job, to the resource's actual weight once
// it exists. It is not an admission: the new total may exceed the quota (a
// resource that exists is a fact, reported through Snapshot).
func (l *Ledger) Adjust(key string, weight float64) error {
	micro, err := toMicro(weight)
	if err != nil {
		return fmt.Errorf("adjust %q: %w", key, err)
	}
	e, ok := l.entries[key]
	if !ok {
		return fmt.Errorf("adjust %q: %w", key, ErrUnknownEntry)
	}
	l.usedMicro += micro - e.micro
	e.weight, e.micro = weight, micro
	return nil
}

// Rekey renames an entry (a poll reservation "poll:R" becoming the job's
// key), keeping its weight and provisioning state. The new key must not
// exist.
func (l *Ledger) Rekey(oldKey, newKey string) error {
	e, ok := l.entries[oldKey]
	if !ok {
		return fmt.Errorf("rekey %q: %w", oldKey, ErrUnknownEntry)
	}
	if oldKey == newKey {
		return nil
	}
	if _, ok := l.entries[newKey]; ok {
		return fmt.Errorf("rekey %q to %q: %w", oldKey, newKey, ErrDuplicateEntry)
	}
	delete(l.entries, oldKey)
	l.entries[newKey] = e
	return nil
}

// Started takes the entry out of the provisioning count: the job really
// started. Calling it again is a no-op.
func (l *Ledger) Started(key string) error {
	e, ok := l.entries[key]
	if !ok {
		return fmt.Errorf("start %q: %w", key, ErrUnknownEntry)
	}
	if e.provisioning {
		e.provisioning = false
		l.provisioning--
	}
	return nil
}

// Release removes the entry, giving back its weight, its job slot and (if
// not Started) its provisioning slot. An unknown key — never reserved, or
// already released — is ErrUnknownEntry and changes nothing.
func (l *Ledger) Release(key string) error {
	e, ok := l.entries[key]
	if !ok {
		return fmt.Errorf("release %q: %w", key, ErrUnknownEntry)
	}
	delete(l.entries, key)
	l.usedMicro -= e.micro
	if e.provisioning {
		l.provisioning--
	}
	return nil
}

// ReleaseKept releases the entry of a resource kept on purpose
// (paas_finished_jobs_keep_resources, paas_decommission_launch_failures =
// false) and remembers it in Snapshot.Kept until Unkeep. The quota is given
// back immediately (fix of reference §12 item 24).
func (l *Ledger) ReleaseKept(key string) error {
	if _, ok := l.kept[key]; ok {
		return fmt.Errorf("keep %q: %w", key, ErrDuplicateEntry)
	}
	if err := l.Release(key); err != nil {
		return err
	}
	l.kept[key] = struct{}{}
	return nil
}

// MarkKept records a kept resource that has no entry (restored after a
// restart). Duplicates are refused.
func (l *Ledger) MarkKept(key string) error {
	if _, ok := l.kept[key]; ok {
		return fmt.Errorf("keep %q: %w", key, ErrDuplicateEntry)
	}
	l.kept[key] = struct{}{}
	return nil
}

// Unkeep forgets a kept resource (it was finally deleted). An unknown key
// is ErrUnknownEntry.
func (l *Ledger) Unkeep(key string) error {
	if _, ok := l.kept[key]; !ok {
		return fmt.Errorf("unkeep %q: %w", key, ErrUnknownEntry)
	}
	delete(l.kept, key)
	return nil
}

// Has reports whether key is an entry.
func (l *Ledger) Has(key string) bool {
	_, ok := l.entries[key]
	return ok
}

// Weight returns the weight of the entry key.
func (l *Ledger) Weight(key string) (float64, bool) {
	e, ok := l.entries[key]
	if !ok {
		return 0, false
	}
	return e.weight, true
}

// Provisioning reports whether the entry key exists and is not Started.
func (l *Ledger) Provisioning(key string) bool {
	e, ok := l.entries[key]
	return ok && e.provisioning
}

// Keys returns the entry keys, sorted (diagnostics, SIGUSR1 dumps).
func (l *Ledger) Keys() []string {
	keys := make([]string, 0, len(l.entries))
	for k := range l.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Headroom returns the weight that can still be reserved (negative when
// the quota is exceeded), or +Inf when there is no weighted quota. It does
// not look at the job or provisioning caps; use CanAdmit for a verdict.
func (l *Ledger) Headroom() float64 {
	if l.limits.WeightQuota <= 0 {
		return math.Inf(1)
	}
	return l.limits.WeightQuota - fromMicro(l.usedMicro)
}

// Snapshot returns the current totals.
func (l *Ledger) Snapshot() Snapshot {
	return Snapshot{
		WeightQuota:     l.limits.WeightQuota,
		WeightUsed:      fromMicro(l.usedMicro),
		Jobs:            len(l.entries),
		MaxJobs:         l.limits.MaxJobs,
		Provisioning:    l.provisioning,
		MaxProvisioning: l.limits.MaxProvisioning,
		Kept:            len(l.kept),
	}
}

// CheckLimits returns an error when the totals exceed a limit: used
// weight above the quota (within the ledger's rounding tolerance of
// 1.6e-5), jobs above MaxJobs, provisioning above MaxProvisioning. Use it
// in invariant checkers instead of comparing the floats directly.
func (s Snapshot) CheckLimits() error {
	var errs []error
	if s.WeightQuota > 0 && s.WeightUsed > s.WeightQuota+quotaSlack/weightUnit {
		errs = append(errs, fmt.Errorf("%w: used %.6f > quota %.6f", ErrWeightQuota, s.WeightUsed, s.WeightQuota))
	}
	if s.MaxJobs > 0 && s.Jobs > s.MaxJobs {
		errs = append(errs, fmt.Errorf("%w: %d jobs > %d", ErrConcurrency, s.Jobs, s.MaxJobs))
	}
	if s.MaxProvisioning > 0 && s.Provisioning > s.MaxProvisioning {
		errs = append(errs, fmt.Errorf("%w: %d provisioning > %d", ErrProvisioning, s.Provisioning, s.MaxProvisioning))
	}
	return errors.Join(errs...)
}

// CheckInvariants verifies that the totals equal the sums over the
// entries and that nothing is negative. It does not check the limits, which
// Adjust, ForceReserve and SetLimits may legitimately leave exceeded.
func (l *Ledger) CheckInvariants() error {
	var sum int64
	prov := 0
	var errs []error
	for k, e := range l.entries {
		if e.micro < 0 || e.weight < 0 {
			errs = append(errs, fmt.Errorf("entry %q has negative weight %v", k, e.weight))
		}
		sum += e.micro
		if e.provisioning {
			prov++
		}
	}
	if sum != l.usedMicro {
		errs = append(errs, fmt.Errorf("used weight %.6f != sum of entries %.6f",
			fromMicro(l.usedMicro), fromMicro(sum)))
	}
	if prov != l.provisioning {
		errs = append(errs, fmt.Errorf("provisioning count %d != entries provisioning %d",
			l.provisioning, prov))
	}
	if l.usedMicro < 0 {
		errs = append(errs, fmt.Errorf("used weight is negative: %.6f", fromMicro(l.usedMicro)))
	}
	if l.provisioning < 0 {
		errs = append(errs, fmt.Errorf("provisioning count is negative: %d", l.provisioning))
	}
	if len(l.entries) == 0 && l.usedMicro != 0 {
		errs = append(errs, fmt.Errorf("no entries but used weight %.6f", fromMicro(l.usedMicro)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ledger invariants: %w", err)
	}
	return nil
}

// PlanLaunch returns the planned start time of the next launch:
// max(now, previous planned start + MinLaunchSpacing), and records it, so
// that successive launches are staggered by the spacing instead of all
// waiting the same delay (reference §1.4, LAUNCH_REQUEST). The caller waits
// until the returned time (select on a timer and ctx.Done()).
func (l *Ledger) PlanLaunch(now time.Time) time.Time {
	planned := now
	if !l.lastLaunch.IsZero() && l.limits.MinLaunchSpacing > 0 {
		if next := l.lastLaunch.Add(l.limits.MinLaunchSpacing); next.After(planned) {
			planned = next
		}
	}
	l.lastLaunch = planned
	return planned
}
