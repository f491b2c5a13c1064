package executortest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
)

func testRunner(name, token string) *config.Runner {
	r := config.DefaultRunner()
	r.Name = name
	r.URL = "https://gitlab.example"
	r.Token = config.Secret(token)
	r.Executor = config.ExecutorFake
	r.LocalDefaultFlavor = config.DefaultLocalDefaultFlavor
	return &r
}

func TestFakeContract(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{name: "default flavors"},
		{name: "clever flavors with max", opts: Options{Flavors: quota.DefaultCleverFlavors(), DefaultFlavor: "M", MaxFlavor: "L"}},
		{name: "with latency", opts: Options{Delays: map[Op]time.Duration{OpProvision: time.Millisecond, OpLaunch: time.Millisecond}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Run(t, func(t *testing.T) Harness {
				cloud := NewCloud()
				r := testRunner("contract", "glrt-contract-token")
				other := NewFake(cloud, testRunner("other", "glrt-other-token"), Options{})
				f := NewFake(cloud, r, tc.opts)
				return Harness{
					Executor: f,
					Runner:   r,
					NewSpec:  NewSpecFunc(r),
					Kill: func(t *testing.T, res executors.Resource) {
						require.True(t, f.Kill(res.Name()))
					},
					Foreign: func(t *testing.T) string {
						spec := NewSpecFunc(testRunner("other", "glrt-other-token"))(t)
						res, err := other.Provision(t.Context(), spec)
						require.NoError(t, err)
						return res.Name()
					},
				}
			})
		})
	}
}

func newSpec(t *testing.T, r *config.Runner, vars ...coordinator.Variable) executors.JobSpec {
	t.Helper()
	job, err := NewJob(NextJobID(), vars...)
	require.NoError(t, err)
	return executors.JobSpec{Job: job, ResourceName: executors.ResourceName(r, job.ID)}
}

func TestFakeProvisionFailures(t *testing.T) {
	tests := []struct {
		name         string
		failures     map[Op]Failure
		wantResource bool
		wantLive     int
	}{
		{name: "before creation", failures: map[Op]Failure{OpProvisionBefore: {Script: []bool{true}}}},
		{
			name:         "after creation returns the resource and the error",
			failures:     map[Op]Failure{OpProvisionAfter: {Rate: 1}},
			wantResource: true,
			wantLive:     1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRunner("r", "tok")
			f := NewFake(NewCloud(), r, Options{Failures: tc.failures})
			spec := newSpec(t, r)
			res, err := f.Provision(t.Context(), spec)
			require.ErrorIs(t, err, ErrInjected)
			je, ok := errors.AsType[*executors.JobError](err)
			require.True(t, ok)
			require.Equal(t, coordinator.RunnerSystemFailure, je.Reason)
			require.Equal(t, tc.wantResource, res != nil)
			require.Equal(t, tc.wantLive, f.Live())
			require.Equal(t, tc.wantLive, f.Provisioned())
			if res != nil {
				require.Equal(t, spec.ResourceName, res.Name())
				require.NoError(t, f.Decommission(t.Context(), res))
				require.Zero(t, f.Live())
			}
		})
	}
}

func TestFakeScriptedFailures(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		call func(t *testing.T, f *Fake, res executors.Resource, spec executors.JobSpec) error
	}{
		{name: "launch", op: OpLaunch, call: func(t *testing.T, f *Fake, res executors.Resource, spec executors.JobSpec) error {
			_, err := f.Launch(t.Context(), res, spec)
			return err
		}},
		{name: "check", op: OpCheck, call: func(t *testing.T, f *Fake, res executors.Resource, _ executors.JobSpec) error {
			_, err := f.Check(t.Context(), res)
			return err
		}},
		{name: "decommission", op: OpDecommission, call: func(t *testing.T, f *Fake, res executors.Resource, _ executors.JobSpec) error {
			return f.Decommission(t.Context(), res)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRunner("r", "tok")
			f := NewFake(NewCloud(), r, Options{})
			f.SetFailure(tc.op, Failure{Script: []bool{true, false, true}})
			spec := newSpec(t, r)
			res, err := f.Provision(t.Context(), spec)
			require.NoError(t, err)
			require.ErrorIs(t, tc.call(t, f, res, spec), ErrInjected)
			require.Equal(t, 1, f.Live(), "a failed %s keeps the resource", tc.op)
			require.NoError(t, tc.call(t, f, res, spec))
			if tc.op != OpDecommission {
				require.ErrorIs(t, tc.call(t, f, res, spec), ErrInjected)
				require.NoError(t, tc.call(t, f, res, spec), "script exhausted, no rate: success")
			}
			require.GreaterOrEqual(t, f.Calls(tc.op), 2)
		})
	}
}

func TestFakeFailureRate(t *testing.T) {
	r := testRunner("r", "tok")
	f := NewFake(NewCloud(), r, Options{Seed: 42, Failures: map[Op]Failure{OpProvisionBefore: {Rate: 0.2}}})
	failed := 0
	const n = 1000
	for range n {
		if _, err := f.Provision(t.Context(), newSpec(t, r)); err != nil {
			require.ErrorIs(t, err, ErrInjected)
			failed++
		}
	}
	require.InDelta(t, 0.2*n, failed, 0.06*n)
	require.Equal(t, n-failed, f.Provisioned())
}

func TestFakeDelayHonoursContext(t *testing.T) {
	r := testRunner("r", "tok")
	f := NewFake(NewCloud(), r, Options{Delays: map[Op]time.Duration{OpProvision: time.Hour}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	spec := newSpec(t, r) // outside the goroutine: newSpec uses require
	go func() {
		_, err := f.Provision(ctx, spec)
		done <- err
	}()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Zero(t, f.Live())
	require.Equal(t, 1, f.Calls(OpProvision))
}

func TestFakeRestartSeesResources(t *testing.T) {
	cloud := NewCloud()
	r := testRunner("r", "tok")
	before := NewFake(cloud, r, Options{})
	spec := newSpec(t, r)
	res, err := before.Provision(t.Context(), spec)
	require.NoError(t, err)
	res, err = before.Launch(t.Context(), res, spec)
	require.NoError(t, err)
	dump, err := before.Dump(res)
	require.NoError(t, err)

	after := NewFake(cloud, r, Options{})
	restored, err := after.Restore(t.Context(), dump)
	require.NoError(t, err)
	st, err := after.Check(t.Context(), restored)
	require.NoError(t, err)
	require.Equal(t, executors.Alive, st.Liveness)
	adopted, err := after.Adopt(t.Context(), spec.ResourceName, spec.Job)
	require.NoError(t, err)
	require.True(t, adopted.Launched())
	_, err = after.Provision(t.Context(), spec)
	require.ErrorIs(t, err, ErrNameTaken)
	require.NoError(t, after.Decommission(t.Context(), restored))
	require.Zero(t, before.Live())
	require.Equal(t, 1, after.Decommissioned())
}

func TestFakeOnLaunchAndKill(t *testing.T) {
	r := testRunner("r", "tok")
	var mu sync.Mutex
	var launchedJobs []int64
	f := NewFake(NewCloud(), r, Options{OnLaunch: func(spec executors.JobSpec) {
		mu.Lock()
		defer mu.Unlock()
		launchedJobs = append(launchedJobs, spec.Job.ID)
	}})
	spec := newSpec(t, r)
	res, err := f.Provision(t.Context(), spec)
	require.NoError(t, err)
	l1, err := f.Launch(t.Context(), res, spec)
	require.NoError(t, err)
	_, err = f.Launch(t.Context(), res, spec) // stale unlaunched value
	require.NoError(t, err)
	_, err = f.Launch(t.Context(), l1, spec)
	require.NoError(t, err)
	require.Equal(t, []int64{spec.Job.ID}, launchedJobs, "OnLaunch runs once per resource")
	require.Equal(t, 1, f.Launches())

	require.True(t, f.Kill(res.Name()))
	st, err := f.Check(t.Context(), l1)
	require.NoError(t, err)
	require.Equal(t, executors.Status{Liveness: executors.Exited, ExitCode: 137}, st)

	require.True(t, f.Cloud().Vanish(res.Name()))
	st, err = f.Check(t.Context(), l1)
	require.NoError(t, err)
	require.Equal(t, executors.Gone, st.Liveness)
	require.NoError(t, f.Decommission(t.Context(), l1))
	require.Zero(t, f.Decommissioned(), "a vanished resource is not a decommission")
	require.False(t, f.Kill(res.Name()))
}

func TestFakeFlavors(t *testing.T) {
	r := testRunner("r", "tok")
	tests := []struct {
		name     string
		opts     Options
		variable string
		want     float64
		wantMax  float64
		wantErr  string
	}{
		{name: "default table weighs 1", want: 1, wantMax: 1},
		{
			name: "default table unknown flavor", variable: "XL",
			wantErr: "Selected flavor 'XL' is not available, possible choices are [M]",
		},
		{
			name: "clever default", opts: Options{Flavors: quota.DefaultCleverFlavors(), DefaultFlavor: "M"},
			want: quota.DefaultCleverFlavors()["M"].Weight(), wantMax: quota.DefaultCleverFlavors()["3XL"].Weight(),
		},
		{
			name: "clever requested", opts: Options{Flavors: quota.DefaultCleverFlavors()}, variable: "XS",
			want: quota.DefaultCleverFlavors()["XS"].Weight(), wantMax: quota.DefaultCleverFlavors()["3XL"].Weight(),
		},
		{
			name: "clever over max", opts: Options{Flavors: quota.DefaultCleverFlavors(), MaxFlavor: "M"}, variable: "3XL",
			wantErr: "Selected flavor '3XL' exceeds the maximum flavor 'M' of this runner. Please change CI_CLEVER_CLOUD_FLAVOR to one of [XS S M], or use another runner",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(NewCloud(), r, tc.opts)
			var vars []coordinator.Variable
			if tc.variable != "" {
				vars = append(vars, coordinator.Variable{Key: quota.FlavorVariable, Value: tc.variable})
			}
			spec := newSpec(t, r, vars...)
			w, err := f.ExpectedWeight(t.Context(), spec.Job)
			if tc.wantErr != "" {
				require.Equal(t, tc.wantErr, executors.PublicMessage(err))
				_, err = f.Provision(t.Context(), spec)
				require.Equal(t, tc.wantErr, executors.PublicMessage(err))
				require.Zero(t, f.Live())
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, w, 1e-9)
			maxW, err := f.MaxWeight(t.Context())
			require.NoError(t, err)
			require.InDelta(t, tc.wantMax, maxW, 1e-9)
			res, err := f.Provision(t.Context(), spec)
			require.NoError(t, err)
			require.InDelta(t, tc.want, res.Weight(), 1e-9)
		})
	}
}

func TestFakeRegistered(t *testing.T) {
	r := testRunner("r", "tok")
	ex, err := executors.New(r, executors.Deps{Logger: logrus.New()})
	require.NoError(t, err)
	f, ok := ex.(*Fake)
	require.True(t, ok)
	require.Equal(t, config.ExecutorFake, f.Kind())
	require.Same(t, DefaultCloud(), f.Cloud())
}

func TestFakeRejectsForeignResources(t *testing.T) {
	f := NewFake(NewCloud(), testRunner("r", "tok"), Options{})
	_, err := f.Dump(foreign{})
	require.ErrorContains(t, err, "not a fake resource")
	require.Error(t, f.Decommission(t.Context(), foreign{}))
	_, err = f.Restore(t.Context(), []byte(`{}`))
	require.Error(t, err)
	_, err = f.Restore(t.Context(), []byte(`not json`))
	require.Error(t, err)
}

type foreign struct{}

func (foreign) ID() string      { return "x" }
func (foreign) Name() string    { return "x" }
func (foreign) Weight() float64 { return 1 }
func (foreign) Launched() bool  { return false }
