package clevertest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
	"gitlab.com/paas-runner/paas-runner/paas/deploy"
)

const (
	orgaID = "orga_a"
	token  = "orga-a-token"
)

func setup(t *testing.T) (*clevertest.Server, *clever.Client, *clever.App) {
	t.Helper()
	fake := clevertest.New(t)
	fake.AddOrga(orgaID, token)
	fake.SetRepoReadyAfter(0)
	c, err := clever.New(clever.Options{BaseURL: fake.APIURL(), RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	require.NoError(t, err)
	app, err := c.CreateApp(t.Context(), clever.Orga{ID: orgaID, Token: token}, clever.CreateAppRequest{
		Name: "hpd-job-x-1", Zone: "par", Deploy: "git", InstanceType: "docker",
		InstanceVersion: clevertest.DockerVersion, InstanceVariant: clevertest.DockerVariant,
		MinInstances: 1, MaxInstances: 1, MinFlavor: "heptapod-runner-S", MaxFlavor: "heptapod-runner-S",
	})
	require.NoError(t, err)
	return fake, c, app
}

func buildContext() *deploy.Context {
	return &deploy.Context{Files: []deploy.File{
		{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM scratch\n")},
		{Name: "job.json", Mode: 0o600, Data: []byte(`{"id":1}`)},
	}}
}

func TestPushes(t *testing.T) {
	tests := []struct {
		name    string
		auth    deploy.Auth
		prepare func(*clevertest.Server)
		wantErr bool
	}{
		{"accepted", deploy.Auth{Username: "Jenkins", Password: token}, nil, false},
		{"wrong password", deploy.Auth{Username: "Jenkins", Password: "nope"}, nil, true},
		{"wrong user", deploy.Auth{Username: "root", Password: token}, nil, true},
		{"rejected", deploy.Auth{Username: "Jenkins", Password: token}, func(s *clevertest.Server) { s.RejectPushes(true) }, true},
		{"repo not ready", deploy.Auth{Username: "Jenkins", Password: token}, func(s *clevertest.Server) { s.SetRepoReadyAfter(-1) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake, _, app := setup(t)
			if tc.prepare != nil {
				tc.prepare(fake)
			}
			err := deploy.Push(t.Context(), app.Deployment.HTTPURL, tc.auth, buildContext(), "master")
			files, pushed := fake.Pushed(app.ID)
			if tc.wantErr {
				require.Error(t, err)
				require.NotContains(t, err.Error(), token)
				require.False(t, pushed)
				return
			}
			require.NoError(t, err)
			require.True(t, pushed)
			require.Equal(t, map[string][]byte{"Dockerfile": []byte("FROM scratch\n"), "job.json": []byte(`{"id":1}`)}, files)
			got, ok := fake.App(app.ID)
			require.True(t, ok)
			require.Equal(t, 1, got.Pushes)
			require.Equal(t, "SHOULD_BE_UP", got.State)
			require.Len(t, got.CommitID, 40)

			err = deploy.Push(t.Context(), app.Deployment.HTTPURL, tc.auth, buildContext(), "master")
			require.ErrorIs(t, err, deploy.ErrAlreadyPushed)
		})
	}
}

func TestInventoryAndOrgaIsolation(t *testing.T) {
	fake, c, app := setup(t)
	fake.AddOrga("orga_b", "orga-b-token")
	b := clever.Orga{ID: "orga_b", Token: config.Secret("orga-b-token")}
	_, err := c.GetApp(t.Context(), b, app.ID)
	require.True(t, clever.IsNotFound(err), "an app is invisible from another orga")
	apps, err := c.ListApps(t.Context(), b)
	require.NoError(t, err)
	require.Empty(t, apps)
	_, err = c.ListApps(t.Context(), clever.Orga{ID: "orga_b", Token: token})
	require.Error(t, err, "orga a's token does not open orga b")

	require.NoError(t, c.DeleteApp(t.Context(), clever.Orga{ID: orgaID, Token: token}, app.ID))
	require.Empty(t, fake.Live())
	require.Len(t, fake.Apps(), 1)
	require.True(t, fake.Apps()[0].Deleted)
	require.Equal(t, orgaID, fake.Apps()[0].Orga)
}

func TestFaultKnobs(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(*clevertest.Server)
		wantErr bool
	}{
		{"error rate 1 fails every call", func(s *clevertest.Server) { s.SetErrorRate(clevertest.EndpointList, 1, 418) }, true},
		{"error rate 0 fails none", func(s *clevertest.Server) { s.SetErrorRate(clevertest.EndpointList, 0, 418) }, false},
		{"status sequence", func(s *clevertest.Server) { s.FailNext(clevertest.EndpointList, 0, 409) }, true},
		{"latency past the attempt timeout", func(s *clevertest.Server) { s.SetLatency(clevertest.EndpointList, time.Second) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := clevertest.New(t, clevertest.WithoutGit())
			fake.AddOrga(orgaID, token)
			c, err := clever.New(clever.Options{BaseURL: fake.APIURL(), RetryMax: -1, Timeout: 50 * time.Millisecond})
			require.NoError(t, err)
			o := clever.Orga{ID: orgaID, Token: token}
			_, err = c.ListApps(t.Context(), o)
			require.NoError(t, err, "first call")
			tc.inject(fake)
			_, err = c.ListApps(t.Context(), o)
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			if err == nil {
				_, err = c.ListApps(t.Context(), o)
			}
			require.Error(t, err)
		})
	}
}
