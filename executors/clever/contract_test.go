package clever_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/executors"
	cleverexec "gitlab.com/paas-runner/paas-runner/executors/clever"
	"gitlab.com/paas-runner/paas-runner/executors/executortest"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
)

func TestContract(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		e := newEnv(t, nil, nil)
		api, err := clever.New(clever.Options{BaseURL: e.fake.APIURL()})
		require.NoError(t, err)
		a := clever.Orga{ID: orgaA, Token: tokenA}
		return executortest.Harness{
			Executor: e.exec,
			Runner:   e.runner,
			NewSpec:  executortest.NewSpecFunc(e.runner),
			Kill: func(t *testing.T, res executors.Resource) {
				require.NoError(t, api.DeleteApp(t.Context(), a, res.ID()))
			},
			Foreign: func(t *testing.T) string {
				_, err := api.CreateApp(t.Context(), a, clever.CreateAppRequest{
					Name: "someone-else-app", Zone: "par", Deploy: "git", InstanceType: "docker",
					InstanceVersion: clevertest.DockerVersion, InstanceVariant: clevertest.DockerVariant,
					MinInstances: 1, MaxInstances: 1, MinFlavor: "heptapod-runner-S", MaxFlavor: "heptapod-runner-S",
				})
				require.NoError(t, err)
				return "someone-else-app"
			},
			Timeout: 30 * time.Second,
		}
	})
}

func TestRegistered(t *testing.T) {
	fake := clevertest.New(t, clevertest.WithoutGit())
	r := newRunner(fake)
	ex, err := executors.New(r, executors.Deps{})
	require.NoError(t, err)
	require.Equal(t, config.ExecutorCleverDocker, ex.Kind())

	r.CCMultiTenant = true
	_, err = executors.New(r, executors.Deps{})
	require.Error(t, err, "multi-tenant without a coordinator client")

	r.CCMultiTenant = false
	r.CCToken = ""
	_, err = cleverexec.New(r, cleverexec.Options{})
	require.Error(t, err, "single tenant without cc_token")
}

// The registry wires the daemon's request observer into the Clever client,
// so Clever API calls show up in the metrics.
func TestRegisteredObservesRequests(t *testing.T) {
	fake := clevertest.New(t, clevertest.WithoutGit())
	r := newRunner(fake)
	var (
		mu    sync.Mutex
		calls []string
	)
	obs := func(api, endpoint string, status int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, fmt.Sprintf("%s %s %d", api, endpoint, status))
	}
	ex, err := executors.New(r, executors.Deps{RequestObserver: obs})
	require.NoError(t, err)
	_, err = ex.MaxWeight(t.Context())
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, calls, "clever /products/flavors 200")
}
