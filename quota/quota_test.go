package quota

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFlavorWeight(t *testing.T) {
	tests := []struct {
		name string
		mib  int
		want float64
	}{
		{"2GiB", 2048, 2.378414},
		{"4GiB", 4096, 5.656854},
		{"8GiB", 8192, 13.454343},
		{"16GiB 16x the RAM of 1GiB weighs 32x", 16384, 32},
		{"32GiB", 32768, 76.109255},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.want, Flavor{MemoryMiB: tc.mib}.Weight(), 1e-5)
		})
	}
}

func TestFlavorsNamesAndMax(t *testing.T) {
	tests := []struct {
		name      string
		flavors   Flavors
		wantNames []string
		wantMax   string
		wantOK    bool
	}{
		{
			name:      "clever table sorted by weight not alphabetically",
			flavors:   DefaultCleverFlavors(),
			wantNames: []string{"XS", "S", "M", "L", "XL", "2XL", "3XL"},
			wantMax:   "3XL",
			wantOK:    true,
		},
		{
			name:      "equal weights sorted by name",
			flavors:   Flavors{"b": {MemoryMiB: 1024}, "a": {MemoryMiB: 1024}, "c": {MemoryMiB: 512}},
			wantNames: []string{"c", "a", "b"},
			wantMax:   "b",
			wantOK:    true,
		},
		{name: "empty", flavors: Flavors{}, wantNames: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.wantNames, tc.flavors.Names())
			fl, ok := tc.flavors.Max()
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, tc.wantMax, fl.Name)
		})
	}
}

func TestFlavorsLookup(t *testing.T) {
	f := DefaultCleverFlavors()
	fl, err := f.Lookup("M")
	require.NoError(t, err)
	require.Equal(t, "heptapod-runner-M", fl.APIName)
	require.Equal(t, 8192, fl.MemoryMiB)

	// A table built without names gets the key as name.
	fl, err = Flavors{"small": {MemoryMiB: 1024}}.Lookup("small")
	require.NoError(t, err)
	require.Equal(t, "small", fl.Name)

	_, err = f.Lookup("HUGE")
	fe, ok := errors.AsType[*FlavorError](err)
	require.True(t, ok)
	require.Equal(t, "HUGE", fe.Requested)
	require.Equal(t, []string{"XS", "S", "M", "L", "XL", "2XL", "3XL"}, fe.Allowed)
	require.Contains(t, err.Error(), "[XS S M L XL 2XL 3XL]")
}

func TestSelect(t *testing.T) {
	all := []string{"XS", "S", "M", "L", "XL", "2XL", "3XL"}
	tests := []struct {
		name        string
		requested   string
		def, max    string
		want        string
		wantMsg     string
		wantAllowed []string
		wantMax     string
	}{
		{name: "unset variable takes the default", def: "M", want: "M"},
		{name: "requested flavor", requested: "XS", def: "M", want: "XS"},
		{name: "requested at max", requested: "L", def: "M", max: "L", want: "L"},
		{name: "below max", requested: "S", def: "M", max: "L", want: "S"},
		{
			name: "unknown flavor lists the choices", requested: "HUGE", def: "M",
			wantMsg:     "Selected flavor 'HUGE' is not available, possible choices are [XS S M L XL 2XL 3XL]",
			wantAllowed: all,
		},
		{
			name: "flavor names are case sensitive", requested: "m", def: "M",
			wantMsg:     "Selected flavor 'm' is not available, possible choices are [XS S M L XL 2XL 3XL]",
			wantAllowed: all,
		},
		{
			name: "unknown default", def: "XXL",
			wantMsg:     "Selected flavor 'XXL' is not available, possible choices are [XS S M L XL 2XL 3XL]",
			wantAllowed: all,
		},
		{
			name: "above max explains and suggests", requested: "3XL", def: "M", max: "L",
			wantMsg: "Selected flavor '3XL' exceeds the maximum flavor 'L' of this runner. " +
				"Please change CI_CLEVER_CLOUD_FLAVOR to one of [XS S M L], or use another runner",
			wantAllowed: []string{"XS", "S", "M", "L"},
			wantMax:     "L",
		},
		{
			name: "default above max", def: "XL", max: "M",
			wantMsg: "Selected flavor 'XL' exceeds the maximum flavor 'M' of this runner. " +
				"Please change CI_CLEVER_CLOUD_FLAVOR to one of [XS S M], or use another runner",
			wantAllowed: []string{"XS", "S", "M"},
			wantMax:     "M",
		},
		{
			name: "unknown max is a misconfiguration", requested: "S", def: "M", max: "4XL",
			wantMsg: "This runner's maximum flavor '4XL' is not available (possible choices are " +
				"[XS S M L XL 2XL 3XL]): the runner is misconfigured, please contact its administrators or use another runner",
			wantAllowed: all,
			wantMax:     "4XL",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fl, err := Select(DefaultCleverFlavors(), tc.requested, tc.def, tc.max)
			if tc.wantMsg == "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, fl.Name)
				return
			}
			require.EqualError(t, err, tc.wantMsg)
			fe, ok := errors.AsType[*FlavorError](err)
			require.True(t, ok)
			require.Equal(t, tc.wantAllowed, fe.Allowed)
			require.Equal(t, tc.wantMax, fe.Max)
			require.NotEmpty(t, fe.Requested)
		})
	}
}

func TestQuota(t *testing.T) {
	// The Heptapod runner's test table: flavor L weighs 4, 3 jobs → 12.
	heptapodTest := Flavors{"L": {MemoryMiB: int(math.Round(math.Pow(4, 1/1.25) * 1024))}}
	tests := []struct {
		name    string
		flavors Flavors
		ref     string
		jobs    int
		want    float64
		wantErr string
	}{
		{name: "heptapod test example", flavors: heptapodTest, ref: "L", jobs: 3, want: 12},
		{name: "clever M x 10", flavors: DefaultCleverFlavors(), ref: "M", jobs: 10, want: 134.54343},
		{
			name: "unknown flavor", flavors: DefaultCleverFlavors(), ref: "HUGE", jobs: 1,
			wantErr: "compute weighted quota: reference_flavor: Flavor 'HUGE' is not available, possible choices are [XS S M L XL 2XL 3XL]",
		},
		{
			name: "zero jobs", flavors: DefaultCleverFlavors(), ref: "M", jobs: 0,
			wantErr: "compute weighted quota: reference_jobs_count must be positive, got 0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Quota(tc.flavors, tc.ref, tc.jobs)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, q, 1e-2)
		})
	}
}

func TestDefaultCleverFlavorsRange(t *testing.T) {
	// The Heptapod README says weights go "roughly from 2 to 75".
	f := DefaultCleverFlavors()
	require.Len(t, f, 7)
	require.InDelta(t, 2, f["XS"].Weight(), 0.5)
	require.InDelta(t, 75, f.MaxWeight(), 2)
	for name, fl := range f {
		require.Equal(t, name, fl.Name)
		require.Equal(t, "heptapod-runner-"+name, fl.APIName)
		require.Positive(t, fl.CPUs)
	}
	require.Zero(t, Flavors{}.MaxWeight())
}
