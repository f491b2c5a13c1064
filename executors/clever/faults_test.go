package clever_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	cleverexec "gitlab.com/paas-runner/paas-runner/executors/clever"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
	"gitlab.com/paas-runner/paas-runner/quota"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		runner func(*config.Runner)
		inject func(*clevertest.Server)
		// provisionFails: Provision returns an error (with or without a
		// resource); launchFails: Launch returns a JobError.
		provisionFails bool
		withResource   bool
		launchFails    bool
		public         string
		creates        int
	}{
		{name: "create 5xx then success", inject: func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointCreate, 503, 500)
		}, creates: 3},
		{name: "create 5xx after processing is not duplicated", inject: func(f *clevertest.Server) {
			f.FailNextAfterProcessing(clevertest.EndpointCreate, 502)
		}, creates: 1},
		{name: "create 4xx fails the job", inject: func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointCreate, 403)
		}, provisionFails: true, public: "could not create", creates: 1},
		{name: "stale instance version is refreshed", inject: func(f *clevertest.Server) {
			f.SetInstanceVersion("20270101")
		}, creates: 2},
		{name: "env failure returns the resource", inject: func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointEnv, 400)
		}, provisionFails: true, withResource: true, public: "could not configure", creates: 1},
		{name: "env transient failure is retried", inject: func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointEnv, 503)
		}, creates: 1},
		{name: "repo never ready", runner: func(r *config.Runner) {
			r.CCDeploymentRepoTimeout = 0.05
		}, inject: func(f *clevertest.Server) {
			f.SetRepoReadyAfter(-1)
		}, launchFails: true, public: "not ready after 50ms", creates: 1},
		{name: "repo ready after a few polls", inject: func(f *clevertest.Server) {
			f.SetRepoReadyAfter(5)
		}, creates: 1},
		{name: "push rejected", inject: func(f *clevertest.Server) {
			f.RejectPushes(true)
		}, launchFails: true, public: "could not push", creates: 1},
		{name: "push 503 once is retried", inject: func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointPush, 503)
		}, creates: 1},
		{name: "get app 5xx while waiting is retried", inject: func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointGet, 502, 503)
		}, creates: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.runner, nil)
			// Warm the catalogues, as the poll loop would have.
			_, err := e.exec.MaxWeight(t.Context())
			require.NoError(t, err)
			spec := e.spec(t)
			_, err = e.exec.ExpectedWeight(t.Context(), spec.Job)
			require.NoError(t, err)
			_, err = e.exec.Client().DockerInstanceType(t.Context())
			require.NoError(t, err)
			tc.inject(e.fake)

			res, err := e.exec.Provision(t.Context(), spec)
			require.Equal(t, tc.creates, countRequests(e.fake, clevertest.EndpointCreate))
			if tc.provisionFails {
				requireJobError(t, err, tc.public)
				if !tc.withResource {
					require.Nil(t, res)
					require.Empty(t, e.fake.Live())
					return
				}
				require.NotNil(t, res, "a created app is returned with the error so that it gets deleted")
			} else {
				require.NoError(t, err)
				res, err = e.exec.Launch(t.Context(), res, spec)
				if tc.launchFails {
					requireJobError(t, err, tc.public)
					require.Nil(t, res)
					// The dispatcher still holds the provisioned resource.
					listed, lerr := e.exec.Adopt(t.Context(), spec.ResourceName, spec.Job)
					require.NoError(t, lerr)
					res = listed
				} else {
					require.NoError(t, err)
					require.True(t, res.Launched())
					_, pushed := e.fake.Pushed(res.ID())
					require.True(t, pushed)
				}
			}
			require.Len(t, e.fake.Live(), 1)
			require.NoError(t, e.exec.Decommission(t.Context(), res))
			require.Empty(t, e.fake.Live(), "nothing leaked")
			require.Len(t, e.fake.Apps(), 1)
		})
	}
}

func countRequests(f *clevertest.Server, endpoint string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

func requireJobError(t *testing.T, err error, public string) {
	t.Helper()
	var je *executors.JobError
	require.ErrorAs(t, err, &je, "want a *executors.JobError, got %T: %v", err, err)
	require.Contains(t, je.Public, public)
	require.Equal(t, coordinator.RunnerSystemFailure, je.Reason)
	require.Equal(t, je.Public, executors.PublicMessage(err))
}

func TestLaunchInterruptible(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e := newEnv(t, func(r *config.Runner) {
		r.CCDeploymentRepoTimeout = 3600
		r.CCDeploymentRepoWaitStep = 3600
	}, func(o *cleverexec.Options) {
		// Cancel as soon as the first readiness poll is answered: Launch
		// is then waiting for an hour-long step.
		o.Client.Observer = func(_, endpoint string, status int, _ time.Duration) {
			if endpoint == "/organisations/:orga/applications/:app" && status == 200 {
				cancel()
			}
		}
	})
	e.fake.SetRepoReadyAfter(-1)
	spec := e.spec(t)
	res, err := e.exec.Provision(t.Context(), spec)
	require.NoError(t, err)
	_, err = e.exec.Launch(ctx, res, spec)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, countRequests(e.fake, clevertest.EndpointGet))
	require.NoError(t, e.exec.Decommission(t.Context(), res))
}

func TestFlavorErrors(t *testing.T) {
	tests := []struct {
		name      string
		maxFlavor string
		flavor    string
		reason    coordinator.FailureReason
		public    []string
	}{
		{"unknown flavor", "2XL", "HUGE", coordinator.ScriptFailure, []string{"HUGE", "XS", "2XL"}},
		{"over max flavor", "L", "3XL", coordinator.ScriptFailure, []string{"3XL", "L"}},
		{"unavailable flavor", "", "4XL", coordinator.ScriptFailure, []string{"4XL"}},
		{"misconfigured max flavor", "9XL", "M", coordinator.RunnerConfigError, []string{"9XL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(r *config.Runner) { r.CCMaxFlavor = tc.maxFlavor }, nil)
			spec := e.spec(t, coordinator.Variable{Key: quota.FlavorVariable, Value: tc.flavor, Public: true})
			_, err := e.exec.ExpectedWeight(t.Context(), spec.Job)
			var je *executors.JobError
			require.ErrorAs(t, err, &je, "got %v", err)
			require.Equal(t, tc.reason, je.Reason)
			for _, s := range tc.public {
				require.Contains(t, je.Public, s)
			}
			res, err := e.exec.Provision(t.Context(), spec)
			require.Nil(t, res)
			require.ErrorAs(t, err, &je)
			require.Empty(t, e.fake.Apps())
		})
	}
}

func TestWeights(t *testing.T) {
	tests := []struct {
		name      string
		maxFlavor string
		flavor    string
		wantGiB   float64
		maxGiB    float64
	}{
		{"default flavor M", "2XL", "", 8, 24},
		{"XS", "2XL", "XS", 2, 24},
		{"no max flavor: heaviest", "", "3XL", 32, 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(r *config.Runner) { r.CCMaxFlavor = tc.maxFlavor }, nil)
			var vars []coordinator.Variable
			if tc.flavor != "" {
				vars = append(vars, coordinator.Variable{Key: quota.FlavorVariable, Value: tc.flavor})
			}
			w, err := e.exec.ExpectedWeight(t.Context(), e.spec(t, vars...).Job)
			require.NoError(t, err)
			require.InDelta(t, math.Pow(tc.wantGiB, 1.25), w, 1e-9)
			maxW, err := e.exec.MaxWeight(t.Context())
			require.NoError(t, err)
			require.InDelta(t, math.Pow(tc.maxGiB, 1.25), maxW, 1e-9)
		})
	}
}
