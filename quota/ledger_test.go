package quota

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Weights of the default Clever flavors, for realistic (non-integer) sums.
var (
	wXS = DefaultCleverFlavors()["XS"].Weight()
	wS  = DefaultCleverFlavors()["S"].Weight()
	wM  = DefaultCleverFlavors()["M"].Weight()
	wL  = DefaultCleverFlavors()["L"].Weight()
	w3  = DefaultCleverFlavors()["3XL"].Weight()
)

// step is one ledger operation of a scenario.
type step struct {
	op      string // reserve, force, canadmit, adjust, rekey, started, release, keep, markkept, unkeep, limits
	key     string
	key2    string  // rekey target
	w       float64 // weight
	limits  Limits  // for op "limits"
	wantErr error   // errors.Is target; nil = success
	// want, when not nil, is checked after the step.
	want *Snapshot
}

func apply(t *testing.T, l *Ledger, s step) error {
	t.Helper()
	switch s.op {
	case "reserve":
		return l.Reserve(s.key, s.w)
	case "force":
		return l.ForceReserve(s.key, s.w)
	case "canadmit":
		return l.CanAdmit(s.w)
	case "adjust":
		return l.Adjust(s.key, s.w)
	case "rekey":
		return l.Rekey(s.key, s.key2)
	case "started":
		return l.Started(s.key)
	case "release":
		return l.Release(s.key)
	case "keep":
		return l.ReleaseKept(s.key)
	case "markkept":
		return l.MarkKept(s.key)
	case "unkeep":
		return l.Unkeep(s.key)
	case "limits":
		l.SetLimits(s.limits)
		return nil
	}
	t.Fatalf("unknown op %q", s.op)
	return nil
}

func snap(used float64, jobs, prov, kept int) *Snapshot {
	return &Snapshot{WeightUsed: used, Jobs: jobs, Provisioning: prov, Kept: kept}
}

func TestLedgerScenarios(t *testing.T) {
	limits := Limits{WeightQuota: 3 * wM, MaxJobs: 4, MaxProvisioning: 10}
	zero := snap(0, 0, 0, 0)
	tests := []struct {
		name   string
		limits *Limits // nil: limits
		steps  []step
		// final is checked exactly (WeightUsed with ==) after the last step.
		final Snapshot
	}{
		{
			name: "poll without job releases the poll reservation",
			steps: []step{
				{op: "reserve", key: "poll:r1", w: wL, want: snap(wL, 1, 1, 0)},
				{op: "release", key: "poll:r1", want: zero},
			},
		},
		{
			name: "full job lifecycle: poll, rekey, expected, actual, started, decommissioned",
			steps: []step{
				{op: "reserve", key: "poll:r1", w: wL},
				{op: "adjust", key: "poll:r1", w: wM},
				{op: "rekey", key: "poll:r1", key2: "r1/42", want: snap(wM, 1, 1, 0)},
				{op: "adjust", key: "r1/42", w: wM},
				{op: "started", key: "r1/42", want: snap(wM, 1, 0, 0)},
				{op: "release", key: "r1/42", want: zero},
			},
		},
		{
			name: "item 24: job finished without resource releases everything",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wM},
				{op: "started", key: "r1/1"},
				{op: "release", key: "r1/1", want: zero},
			},
		},
		{
			name: "item 24: launch failed without resource releases the expected weight and the provisioning slot",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wS, want: snap(wS, 1, 1, 0)},
				{op: "release", key: "r1/1", want: zero},
			},
		},
		{
			name: "item 24: paas_finished_jobs_keep_resources releases the quota and counts the resource as kept",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wM},
				{op: "reserve", key: "r1/2", w: wM},
				{op: "reserve", key: "r1/3", w: wM},
				{op: "canadmit", w: wXS, wantErr: ErrWeightQuota},
				{op: "started", key: "r1/1"},
				{op: "keep", key: "r1/1", want: snap(2*wM, 2, 2, 1)},
				// The kept resource no longer blocks admission.
				{op: "reserve", key: "r1/4", w: wM, want: snap(3*wM, 3, 3, 1)},
				{op: "release", key: "r1/2"},
				{op: "release", key: "r1/3"},
				{op: "release", key: "r1/4", want: snap(0, 0, 0, 1)},
				// Kept resources deleted later (reconciliation, operator).
				{op: "unkeep", key: "r1/1", want: zero},
				{op: "unkeep", key: "r1/1", wantErr: ErrUnknownEntry, want: zero},
			},
		},
		{
			name: "item 24: paas_decommission_launch_failures=false keeps the failed resource but releases its quota",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wM},
				{op: "adjust", key: "r1/1", w: wL, want: snap(wL, 1, 1, 0)},
				{op: "keep", key: "r1/1", want: snap(0, 0, 0, 1)},
				{op: "keep", key: "r1/1", wantErr: ErrDuplicateEntry, want: snap(0, 0, 0, 1)},
				{op: "unkeep", key: "r1/1", want: zero},
			},
		},
		{
			name: "item 24: failed decommission keeps the entry until a retry succeeds",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wM},
				{op: "started", key: "r1/1"},
				// Decommission failed: the dispatcher does not release;
				// the resource still costs.
				{op: "canadmit", w: wM, want: snap(wM, 1, 0, 0)},
				// Retried later with back-off: success releases once.
				{op: "release", key: "r1/1", want: zero},
			},
		},
		{
			name: "item 25: double release is an error, not a double decrement",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wM},
				{op: "reserve", key: "r1/2", w: wS},
				{op: "release", key: "r1/1", want: snap(wS, 1, 2-1, 0)},
				{op: "release", key: "r1/1", wantErr: ErrUnknownEntry, want: snap(wS, 1, 1, 0)},
				{op: "release", key: "r1/2", want: zero},
				{op: "release", key: "r1/2", wantErr: ErrUnknownEntry, want: zero},
			},
		},
		{
			name: "item 25: release of a never reserved key changes nothing",
			steps: []step{
				{op: "release", key: "ghost", wantErr: ErrUnknownEntry, want: zero},
				{op: "started", key: "ghost", wantErr: ErrUnknownEntry, want: zero},
				{op: "adjust", key: "ghost", w: 1, wantErr: ErrUnknownEntry, want: zero},
			},
		},
		{
			name: "item 26: failed launch after Adjust releases the adjusted weight exactly",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wM},
				{op: "reserve", key: "r1/2", w: wXS},
				// The resource turned out bigger than expected.
				{op: "adjust", key: "r1/1", w: wL, want: snap(wL+wXS, 2, 2, 0)},
				{op: "release", key: "r1/1", want: snap(wXS, 1, 1, 0)},
				{op: "release", key: "r1/2", want: zero},
			},
		},
		{
			name: "item 26: smaller actual weight after Adjust",
			steps: []step{
				{op: "reserve", key: "r1/1", w: wL},
				{op: "adjust", key: "r1/1", w: wS},
				{op: "started", key: "r1/1"},
				{op: "release", key: "r1/1", want: zero},
			},
		},
		{
			name:   "provisioning cap is hard",
			limits: &Limits{WeightQuota: 3 * wM, MaxJobs: 4, MaxProvisioning: 3},
			steps: []step{
				{op: "reserve", key: "a", w: wXS},
				{op: "reserve", key: "b", w: wXS},
				{op: "reserve", key: "c", w: wXS},
				{op: "canadmit", w: wXS, wantErr: ErrProvisioning},
				{op: "reserve", key: "d", w: wXS, wantErr: ErrProvisioning, want: snap(3*wXS, 3, 3, 0)},
				{op: "started", key: "a"},
				{op: "started", key: "a"}, // idempotent
				{op: "reserve", key: "d", w: wXS, want: snap(4*wXS, 4, 3, 0)},
			},
			final: Snapshot{WeightUsed: 4 * wXS, Jobs: 4, Provisioning: 3},
		},
		{
			name: "job count cap",
			steps: []step{
				{op: "reserve", key: "a", w: wXS},
				{op: "started", key: "a"},
				{op: "reserve", key: "b", w: wXS},
				{op: "started", key: "b"},
				{op: "reserve", key: "c", w: wXS},
				{op: "started", key: "c"},
				{op: "reserve", key: "d", w: wXS},
				{op: "started", key: "d"},
				{op: "reserve", key: "e", w: wXS, wantErr: ErrConcurrency, want: snap(4*wXS, 4, 0, 0)},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
				{op: "release", key: "c"},
				{op: "release", key: "d"},
			},
		},
		{
			name: "weighted quota admits exactly up to the quota",
			steps: []step{
				{op: "reserve", key: "a", w: wM},
				{op: "reserve", key: "b", w: wM},
				{op: "canadmit", w: wM},
				{op: "canadmit", w: wM + 0.001, wantErr: ErrWeightQuota},
				{op: "reserve", key: "c", w: wM, want: snap(3*wM, 3, 3, 0)},
				{op: "reserve", key: "d", w: 0.01, wantErr: ErrWeightQuota},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
				{op: "release", key: "c"},
			},
		},
		{
			name:   "zero weight job passes a full quota but not the caps",
			limits: &Limits{WeightQuota: wS, MaxJobs: 2},
			steps: []step{
				{op: "reserve", key: "a", w: wS},
				{op: "reserve", key: "b", w: 0},
				{op: "reserve", key: "c", w: 0, wantErr: ErrConcurrency},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
			},
		},
		{
			name: "adjust may exceed the quota and is reported",
			steps: []step{
				{op: "reserve", key: "a", w: wM},
				{op: "reserve", key: "b", w: wM},
				{op: "adjust", key: "b", w: w3, want: snap(wM+w3, 2, 2, 0)},
				{op: "canadmit", w: 0.5, wantErr: ErrWeightQuota},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
			},
		},
		{
			name: "force reserve ignores limits but refuses duplicates",
			steps: []step{
				{op: "force", key: "a", w: w3},
				{op: "force", key: "b", w: w3},
				{op: "force", key: "c", w: w3},
				{op: "force", key: "d", w: w3},
				{op: "force", key: "e", w: w3, want: snap(5*w3, 5, 5, 0)},
				{op: "force", key: "e", w: 1, wantErr: ErrDuplicateEntry, want: snap(5*w3, 5, 5, 0)},
				{op: "reserve", key: "a", w: 1, wantErr: ErrDuplicateEntry},
				{op: "markkept", key: "k"},
				{op: "markkept", key: "k", wantErr: ErrDuplicateEntry, want: snap(5*w3, 5, 5, 1)},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
				{op: "release", key: "c"},
				{op: "release", key: "d"},
				{op: "release", key: "e"},
				{op: "unkeep", key: "k"},
			},
		},
		{
			name: "negative and invalid weights refused",
			steps: []step{
				{op: "reserve", key: "a", w: -1, wantErr: ErrNegative, want: zero},
				{op: "force", key: "a", w: math.NaN(), wantErr: ErrNegative, want: zero},
				{op: "canadmit", w: math.Inf(1), wantErr: ErrNegative},
				{op: "reserve", key: "a", w: 1},
				{op: "adjust", key: "a", w: -0.5, wantErr: ErrNegative, want: snap(1, 1, 1, 0)},
				{op: "release", key: "a"},
			},
		},
		{
			name: "rekey errors",
			steps: []step{
				{op: "reserve", key: "a", w: 1},
				{op: "reserve", key: "b", w: 2},
				{op: "rekey", key: "a", key2: "b", wantErr: ErrDuplicateEntry, want: snap(3, 2, 2, 0)},
				{op: "rekey", key: "x", key2: "y", wantErr: ErrUnknownEntry},
				{op: "rekey", key: "a", key2: "a"},
				{op: "started", key: "a"},
				{op: "rekey", key: "a", key2: "c", want: snap(3, 2, 1, 0)},
				{op: "release", key: "a", wantErr: ErrUnknownEntry},
				{op: "release", key: "c", want: snap(2, 1, 1, 0)},
				{op: "release", key: "b"},
			},
		},
		{
			name: "reload with lower limits keeps entries and refuses new ones",
			steps: []step{
				{op: "reserve", key: "a", w: wM},
				{op: "reserve", key: "b", w: wM},
				{op: "limits", limits: Limits{WeightQuota: wM, MaxJobs: 1, MaxProvisioning: 1}, want: snap(2*wM, 2, 2, 0)},
				{op: "canadmit", w: 0, wantErr: ErrConcurrency},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
				{op: "reserve", key: "c", w: wM},
				{op: "release", key: "c"},
			},
		},
		{
			name:   "zero limits mean no limit",
			limits: &Limits{},
			steps: []step{
				{op: "reserve", key: "a", w: 1e6},
				{op: "reserve", key: "b", w: 1e6},
				{op: "canadmit", w: 1e9},
				{op: "release", key: "a"},
				{op: "release", key: "b"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := limits
			if tc.limits != nil {
				lim = *tc.limits
			}
			l := NewLedger(lim)
			for i, s := range tc.steps {
				err := apply(t, l, s)
				if s.wantErr != nil {
					require.ErrorIs(t, err, s.wantErr, "step %d %s %s", i, s.op, s.key)
				} else {
					require.NoError(t, err, "step %d %s %s", i, s.op, s.key)
				}
				require.NoError(t, l.CheckInvariants(), "step %d", i)
				if s.want != nil {
					got := l.Snapshot()
					require.InDelta(t, s.want.WeightUsed, got.WeightUsed, 1e-5, "step %d weight", i)
					require.Equal(t, s.want.Jobs, got.Jobs, "step %d jobs", i)
					require.Equal(t, s.want.Provisioning, got.Provisioning, "step %d provisioning", i)
					require.Equal(t, s.want.Kept, got.Kept, "step %d kept", i)
				}
			}
			got := l.Snapshot()
			require.Equal(t, tc.final.Jobs, got.Jobs)
			require.Equal(t, tc.final.Provisioning, got.Provisioning)
			require.Equal(t, tc.final.Kept, got.Kept)
			if tc.final.Jobs == 0 {
				require.Zero(t, got.WeightUsed, "everything released must be exactly zero")
			} else {
				require.InDelta(t, tc.final.WeightUsed, got.WeightUsed, 1e-5)
			}
		})
	}
}

func TestLedgerAccessors(t *testing.T) {
	lim := Limits{WeightQuota: 10, MaxJobs: 3, MaxProvisioning: 2, MinLaunchSpacing: time.Second}
	l := NewLedger(lim)
	require.Equal(t, lim, l.Limits())
	require.NoError(t, l.Reserve("b", 2.5))
	require.NoError(t, l.Reserve("a", 1))
	require.True(t, l.Has("a"))
	require.False(t, l.Has("z"))
	w, ok := l.Weight("b")
	require.True(t, ok)
	require.InDelta(t, 2.5, w, 1e-12)
	_, ok = l.Weight("z")
	require.False(t, ok)
	require.True(t, l.Provisioning("a"))
	require.NoError(t, l.Started("a"))
	require.False(t, l.Provisioning("a"))
	require.Equal(t, []string{"a", "b"}, l.Keys())
	require.InDelta(t, 6.5, l.Headroom(), 1e-9)
	require.Equal(t, Snapshot{WeightQuota: 10, WeightUsed: 3.5, Jobs: 2, MaxJobs: 3, Provisioning: 1, MaxProvisioning: 2}, l.Snapshot())
	require.True(t, math.IsInf(NewLedger(Limits{}).Headroom(), 1))
}

func TestSnapshotCheckLimits(t *testing.T) {
	tests := []struct {
		name    string
		s       Snapshot
		wantErr error
	}{
		{name: "within", s: Snapshot{WeightQuota: 10, WeightUsed: 10, Jobs: 2, MaxJobs: 2, Provisioning: 1, MaxProvisioning: 1}},
		{name: "rounding tolerance", s: Snapshot{WeightQuota: 10, WeightUsed: 10.000001}},
		{name: "no limits", s: Snapshot{WeightUsed: 1e9, Jobs: 1e6, Provisioning: 1e6}},
		{name: "weight", s: Snapshot{WeightQuota: 10, WeightUsed: 10.01}, wantErr: ErrWeightQuota},
		{name: "jobs", s: Snapshot{Jobs: 3, MaxJobs: 2}, wantErr: ErrConcurrency},
		{name: "provisioning", s: Snapshot{Provisioning: 3, MaxProvisioning: 2}, wantErr: ErrProvisioning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.CheckLimits()
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestLedgerCheckInvariantsDetectsCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(l *Ledger)
		want    string
	}{
		{name: "weight total", corrupt: func(l *Ledger) { l.usedMicro += 5 }, want: "used weight"},
		{name: "provisioning total", corrupt: func(l *Ledger) { l.provisioning++ }, want: "provisioning count"},
		{name: "negative entry", corrupt: func(l *Ledger) { l.entries["x"] = &entry{weight: -1, micro: -1} }, want: "negative weight"},
		{name: "negative totals", corrupt: func(l *Ledger) {
			clear(l.entries)
			l.usedMicro, l.provisioning = -1, -1
		}, want: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger(Limits{})
			require.NoError(t, l.Reserve("a", 1))
			require.NoError(t, l.CheckInvariants())
			tc.corrupt(l)
			require.ErrorContains(t, l.CheckInvariants(), tc.want)
		})
	}
}

func TestLedgerPlanLaunch(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		spacing time.Duration
		nows    []time.Duration // offsets from t0 of successive calls
		want    []time.Duration
	}{
		{
			name:    "staggered by the spacing, not all delayed by the same amount",
			spacing: 10 * time.Second,
			nows:    []time.Duration{0, 0, 0, 5 * time.Second},
			want:    []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second},
		},
		{
			name:    "no delay once the spacing has passed",
			spacing: 10 * time.Second,
			nows:    []time.Duration{0, 15 * time.Second, 16 * time.Second, time.Minute},
			want:    []time.Duration{0, 15 * time.Second, 25 * time.Second, time.Minute},
		},
		{
			name: "no spacing",
			nows: []time.Duration{0, 0, time.Second},
			want: []time.Duration{0, 0, time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger(Limits{MinLaunchSpacing: tc.spacing})
			for i, now := range tc.nows {
				require.Equal(t, t0.Add(tc.want[i]), l.PlanLaunch(t0.Add(now)), "call %d", i)
			}
		})
	}
}

// model is the obviously-correct reference the random test compares the
// ledger with.
type model map[string]*modelEntry

type modelEntry struct {
	w    float64
	prov bool
}

func (m model) totals() (sum float64, prov int) {
	for _, e := range m {
		sum += e.w
		if e.prov {
			prov++
		}
	}
	return sum, prov
}

// checkReserve checks Reserve's (and CanAdmit's) verdict against the model.
// Near the quota boundary (rounding) either verdict is accepted.
func (m model) checkReserve(t *testing.T, lim Limits, key string, w float64, canErr, err error) {
	t.Helper()
	sum, prov := m.totals()
	_, exists := m[key]
	switch {
	case exists:
		require.ErrorIs(t, err, ErrDuplicateEntry)
	case len(m) >= lim.MaxJobs:
		require.ErrorIs(t, err, ErrConcurrency)
		require.ErrorIs(t, canErr, ErrConcurrency)
	case prov >= lim.MaxProvisioning:
		require.ErrorIs(t, err, ErrProvisioning)
		require.ErrorIs(t, canErr, ErrProvisioning)
	case sum+w > lim.WeightQuota+1e-4:
		require.ErrorIs(t, err, ErrWeightQuota)
		require.ErrorIs(t, canErr, ErrWeightQuota)
	case sum+w < lim.WeightQuota-1e-4:
		require.NoError(t, err)
		require.NoError(t, canErr)
	}
}

// checkKnown checks the verdict of an operation on an existing key or not.
func checkKnown(t *testing.T, exists bool, err error) bool {
	t.Helper()
	if !exists {
		require.ErrorIs(t, err, ErrUnknownEntry)
		return false
	}
	require.NoError(t, err)
	return true
}

func (m model) check(t *testing.T, l *Ledger, op int) {
	t.Helper()
	require.NoError(t, l.CheckInvariants(), "op %d", op)
	sum, prov := m.totals()
	s := l.Snapshot()
	require.Equal(t, len(m), s.Jobs, "op %d", op)
	require.Equal(t, prov, s.Provisioning, "op %d", op)
	require.InDelta(t, sum, s.WeightUsed, 1e-4, "op %d", op)
	require.GreaterOrEqual(t, s.WeightUsed, 0.0)
	for k, e := range m {
		got, ok := l.Weight(k)
		require.True(t, ok)
		require.InDelta(t, e.w, got, 1e-12)
	}
}

// randomOp applies one random operation (on a key of keys, with a weight of
// weights) to the ledger and to the model, checking the ledger's answer.
func (m model) randomOp(t *testing.T, rng *rand.Rand, l *Ledger, lim Limits, keys []string, weights []float64) {
	t.Helper()
	key := keys[rng.IntN(len(keys))]
	w := weights[rng.IntN(len(weights))]
	e, exists := m[key]
	switch rng.IntN(7) {
	case 0, 1:
		canErr := l.CanAdmit(w)
		err := l.Reserve(key, w)
		m.checkReserve(t, lim, key, w, canErr, err)
		if err == nil {
			m[key] = &modelEntry{w: w, prov: true}
		}
	case 2:
		if checkKnown(t, exists, l.Adjust(key, w)) {
			e.w = w
		}
	case 3:
		if checkKnown(t, exists, l.Started(key)) {
			e.prov = false
		}
	case 4, 5:
		if checkKnown(t, exists, l.Release(key)) {
			delete(m, key)
		}
	case 6:
		to := keys[rng.IntN(len(keys))]
		_, toExists := m[to]
		err := l.Rekey(key, to)
		if exists && toExists && key != to {
			require.ErrorIs(t, err, ErrDuplicateEntry)
		} else if checkKnown(t, exists, err) {
			delete(m, key)
			m[to] = e
		}
	}
}

// TestLedgerRandomOperations drives the ledger with random operations and
// checks it against a simple model after every one.
func TestLedgerRandomOperations(t *testing.T) {
	weights := []float64{0, 1, wXS, wS, wM, wL, w3, 0.1, 7}
	keys := make([]string, 12)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			lim := Limits{WeightQuota: 4 * wM, MaxJobs: 6, MaxProvisioning: 4}
			l := NewLedger(lim)
			m := model{}
			for i := range 5000 {
				m.randomOp(t, rng, l, lim, keys, weights)
				m.check(t, l, i)
			}
			for key := range m {
				require.NoError(t, l.Release(key))
			}
			s := l.Snapshot()
			require.Zero(t, s.WeightUsed, "all released must be exactly zero")
			require.Zero(t, s.Jobs)
			require.Zero(t, s.Provisioning)
			require.NoError(t, l.CheckInvariants())
		})
	}
}

func benchCycle(b *testing.B, l *Ledger) {
	b.Helper()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "runner/" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := keys[i%len(keys)]
		if err := l.Reserve("poll:r", wL); err != nil {
			b.Fatal(err)
		}
		if err := l.Adjust("poll:r", wM); err != nil {
			b.Fatal(err)
		}
		if err := l.Rekey("poll:r", k); err != nil {
			b.Fatal(err)
		}
		if err := l.Adjust(k, wM); err != nil {
			b.Fatal(err)
		}
		if err := l.Started(k); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLedgerAdmission measures one job's whole accounting cycle
// (Reserve, Adjust, Rekey, Adjust, Started, Release) on an empty ledger.
func BenchmarkLedgerAdmission(b *testing.B) {
	benchCycle(b, NewLedger(Limits{WeightQuota: 100 * wM, MaxJobs: 100, MaxProvisioning: 10}))
}

// BenchmarkLedgerAdmission10k measures the same cycle with 10,000 entries
// already tracked.
func BenchmarkLedgerAdmission10k(b *testing.B) {
	l := NewLedger(Limits{WeightQuota: 20000 * wM, MaxJobs: 20000, MaxProvisioning: 20000})
	for i := range 10000 {
		if err := l.Reserve("existing/"+strconv.Itoa(i), wM); err != nil {
			b.Fatal(err)
		}
	}
	benchCycle(b, l)
}
