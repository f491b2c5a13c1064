package clever_test

import (
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
