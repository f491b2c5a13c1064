package clever_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/paas/clever"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
)

const (
	orgaID    = "orga_11111111-2222-3333-4444-555555555555"
	orgaToken = "cc-secret-token-0123456789"
)

func newPair(t *testing.T, mut func(*clever.Options)) (*clever.Client, *clevertest.Server) {
	t.Helper()
	fake := clevertest.New(t, clevertest.WithoutGit())
	fake.AddOrga(orgaID, orgaToken)
	opts := clever.Options{
		BaseURL:      fake.APIURL(),
		RetryMax:     3,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	}
	if mut != nil {
		mut(&opts)
	}
	c, err := clever.New(opts)
	require.NoError(t, err)
	return c, fake
}

func orga() clever.Orga { return clever.Orga{ID: orgaID, Token: config.Secret(orgaToken)} }

func createReq(name string) clever.CreateAppRequest {
	return clever.CreateAppRequest{
		Name: name, Zone: "par", Deploy: "git", InstanceType: "docker",
		InstanceVersion: clevertest.DockerVersion, InstanceVariant: clevertest.HeptapodVariant,
		InstanceLifetime: clever.LifetimeTask, MinInstances: 1, MaxInstances: 1,
		MinFlavor: "heptapod-runner-M", MaxFlavor: "heptapod-runner-M",
	}
}

func count(fake *clevertest.Server, endpoint string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := map[string]clever.Options{
		"no url":     {},
		"bad scheme": {BaseURL: "http://x", AuthScheme: "basic"},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := clever.New(o)
			require.Error(t, err)
		})
	}
}

func TestFlavorTable(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c, fake := newPair(t, func(o *clever.Options) { o.Now = clock; o.CatalogTTL = time.Hour })

	table, err := c.FlavorTable(t.Context(), "heptapod-runner", "heptapod-runner-", "")
	require.NoError(t, err)
	require.Equal(t, []string{"2XL", "3XL", "L", "M", "S", "XL", "XS"}, sortedKeys(table))
	require.Equal(t, 8192, table["M"].MemoryMiB)
	require.Equal(t, "heptapod-runner-M", table["M"].APIName)
	require.InDelta(t, 4.0, table["M"].CPUs, 0)
	require.NotContains(t, table, "4XL", "unavailable flavors are dropped")
	require.Equal(t, 1, count(fake, clevertest.EndpointFlavors))

	tests := []struct {
		name    string
		advance time.Duration
		want    string
		fetches int
	}{
		{"cached hit", 0, "M", 1},
		{"miss too soon is not refetched", time.Second, "4XL", 1},
		{"miss refetches", time.Minute, "4XL", 2},
		{"hit within ttl", 30 * time.Minute, "S", 2},
		{"ttl expiry refetches", time.Hour, "", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			advance(tc.advance)
			_, err := c.FlavorTable(t.Context(), "heptapod-runner", "heptapod-runner-", tc.want)
			require.NoError(t, err)
			require.Equal(t, tc.fetches, count(fake, clevertest.EndpointFlavors))
		})
	}

	t.Run("stale list survives a failing refresh", func(t *testing.T) {
		advance(2 * time.Hour)
		fake.FailNext(clevertest.EndpointFlavors, 503, 503, 503, 503)
		table, err := c.FlavorTable(t.Context(), "heptapod-runner", "heptapod-runner-", "")
		require.NoError(t, err)
		require.Contains(t, table, "XL")
	})

	t.Run("concurrent use", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := c.FlavorTable(t.Context(), "heptapod-runner", "heptapod-runner-", "M")
				require.NoError(t, err)
			})
		}
		wg.Wait()
	})
}

func TestFlavorMemoryUnits(t *testing.T) {
	tests := map[string]struct {
		f    clever.Flavor
		want int
	}{
		"mem only":     {clever.Flavor{Mem: 4096}, 4096},
		"bytes win":    {clever.Flavor{Mem: 1, Memory: &clever.Memory{Unit: "B", Value: 8 << 30}}, 8192},
		"gib":          {clever.Flavor{Mem: 1, Memory: &clever.Memory{Unit: "GiB", Value: 2}}, 2048},
		"unknown unit": {clever.Flavor{Mem: 512, Memory: &clever.Memory{Unit: "parsec", Value: 2}}, 512},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.f.MemoryMiB())
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestDockerInstanceType(t *testing.T) {
	c, fake := newPair(t, nil)
	it, err := c.DockerInstanceType(t.Context())
	require.NoError(t, err)
	require.Equal(t, "docker", it.Type)
	require.Equal(t, clevertest.DockerVersion, it.Version)
	_, err = c.DockerInstanceType(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, count(fake, clevertest.EndpointInstances), "cached")

	fake.SetInstanceVersion("20270101")
	c.InvalidateInstanceType()
	it, err = c.DockerInstanceType(t.Context())
	require.NoError(t, err)
	require.Equal(t, "20270101", it.Version)
	require.Equal(t, 2, count(fake, clevertest.EndpointInstances))
	for _, r := range fake.Requests() {
		require.Empty(t, r.Scheme, "catalogue calls carry no credentials: %s", r.Path)
	}
}

func TestAuthSchemes(t *testing.T) {
	tests := []struct {
		name, scheme, require string
		token                 string
		wantStatus            int
	}{
		{"token scheme", "", "token", orgaToken, 0},
		{"bearer scheme", "bearer", "Bearer", orgaToken, 0},
		{"wrong scheme", "bearer", "token", orgaToken, 401},
		{"wrong token", "", "", "nope", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newPair(t, func(o *clever.Options) { o.AuthScheme = tc.scheme })
			fake.RequireScheme(tc.require)
			_, err := c.ListApps(t.Context(), clever.Orga{ID: orgaID, Token: config.Secret(tc.token)})
			if tc.wantStatus == 0 {
				require.NoError(t, err)
				return
			}
			var ae *clever.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tc.wantStatus, ae.Status)
			require.False(t, clever.Retryable(err))
			require.Equal(t, 1, count(fake, clevertest.EndpointList), "4xx is not retried")
			require.NotContains(t, err.Error(), tc.token)
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		faults   []int
		wantErr  bool
		status   int
		attempts int
	}{
		{"503 twice then ok", []int{503, 503}, false, 0, 3},
		{"429 then ok", []int{429}, false, 0, 2},
		{"plain text 500 exhausts retries", []int{500, 500, 500, 500}, true, 500, 4},
		{"404 is not retried", []int{404}, true, 404, 1},
		{"408 is retried", []int{408}, false, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newPair(t, nil)
			fake.FailNext(clevertest.EndpointList, tc.faults...)
			_, err := c.ListApps(t.Context(), orga())
			require.Equal(t, tc.attempts, count(fake, clevertest.EndpointList))
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			var ae *clever.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tc.status, ae.Status)
			require.Equal(t, "GET", ae.Method)
			require.Equal(t, "/organisations/"+orgaID+"/applications", ae.Path)
			if tc.status == 500 {
				require.Equal(t, "Internal Server Error", ae.Message)
				require.True(t, clever.Retryable(err))
			}
		})
	}
}

func TestCreateApp(t *testing.T) {
	tests := []struct {
		name       string
		mut        func(*clever.CreateAppRequest)
		inject     func(*clevertest.Server)
		wantErr    func(*testing.T, error)
		creates    int
		wantStored int
	}{
		{"plain", nil, func(*clevertest.Server) {}, nil, 1, 1},
		{"5xx before processing then success", nil, func(f *clevertest.Server) {
			f.FailNext(clevertest.EndpointCreate, 503, 500)
		}, nil, 3, 1},
		{"5xx after processing is deduplicated by name", nil, func(f *clevertest.Server) {
			f.FailNextAfterProcessing(clevertest.EndpointCreate, 502)
		}, nil, 1, 1},
		{"stale instance version", nil, func(f *clevertest.Server) {
			f.SetInstanceVersion("20990101")
		}, func(t *testing.T, err error) {
			require.True(t, clever.IsInstanceNotFound(err))
		}, 1, 0},
		{
			"unknown flavor is permanent", func(r *clever.CreateAppRequest) { r.MaxFlavor = "heptapod-runner-9XL" },
			func(*clevertest.Server) {}, func(t *testing.T, err error) {
				require.False(t, clever.Retryable(err))
			}, 1, 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newPair(t, nil)
			tc.inject(fake)
			req := createReq("hpd-job-abc-1")
			if tc.mut != nil {
				tc.mut(&req)
			}
			app, err := c.CreateApp(t.Context(), orga(), req)
			require.Equal(t, tc.creates, count(fake, clevertest.EndpointCreate))
			require.Len(t, fake.Apps(), tc.wantStored)
			if tc.wantErr != nil {
				require.Error(t, err)
				tc.wantErr(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, fake.Apps()[0].ID, app.ID)
			require.Equal(t, "hpd-job-abc-1", app.Name)
			require.Equal(t, clever.RepoCreating, app.Deployment.RepoState)
			require.Equal(t, 8192, app.Instance.MaxFlavor.MemoryMiB())
			require.NotEmpty(t, app.Deployment.HTTPURL)
		})
	}
}

func TestCreateAppExactBody(t *testing.T) {
	c, fake := newPair(t, nil)
	_, err := c.CreateApp(t.Context(), orga(), createReq("hpd-job-abc-2"))
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(fake.Apps()[0].CreateRaw, &body))
	require.Equal(t, map[string]any{
		"name": "hpd-job-abc-2", "zone": "par", "deploy": "git", "instanceType": "docker",
		"instanceVersion": clevertest.DockerVersion, "instanceVariant": clevertest.HeptapodVariant,
		"instanceLifetime": "TASK", "minInstances": 1.0, "maxInstances": 1.0,
		"minFlavor": "heptapod-runner-M", "maxFlavor": "heptapod-runner-M",
	}, body)
}

func TestAppLifecycle(t *testing.T) {
	c, fake := newPair(t, nil)
	app, err := c.CreateApp(t.Context(), orga(), createReq("hpd-job-abc-3"))
	require.NoError(t, err)

	env := clever.Env{{Name: "CC_MOUNT_DOCKER_SOCKET", Value: "true"}, {Name: "Z", Value: "1"}, {Name: "A", Value: "2"}, {Name: "Z", Value: "3"}}
	require.NoError(t, c.SetEnv(t.Context(), orga(), app.ID, env))
	stored, _ := fake.App(app.ID)
	require.JSONEq(t, `{"CC_MOUNT_DOCKER_SOCKET":"true","Z":"3","A":"2"}`, string(stored.EnvRaw))
	require.True(t, strings.HasPrefix(string(stored.EnvRaw), `{"CC_MOUNT_DOCKER_SOCKET":"true","Z"`), "order kept")

	got, err := c.GetApp(t.Context(), orga(), app.ID)
	require.NoError(t, err)
	require.Equal(t, clever.RepoCreating, got.Deployment.RepoState)
	got, err = c.GetApp(t.Context(), orga(), app.ID)
	require.NoError(t, err)
	require.Equal(t, clever.RepoCreated, got.Deployment.RepoState)

	found, err := c.FindApp(t.Context(), orga(), "hpd-job-abc-3")
	require.NoError(t, err)
	require.Equal(t, app.ID, found.ID)
	none, err := c.FindApp(t.Context(), orga(), "other")
	require.NoError(t, err)
	require.Nil(t, none)

	require.NoError(t, c.DeleteApp(t.Context(), orga(), app.ID))
	require.NoError(t, c.DeleteApp(t.Context(), orga(), app.ID), "already gone is a success")
	_, err = c.GetApp(t.Context(), orga(), app.ID)
	require.True(t, clever.IsNotFound(err))
	var ae *clever.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, clever.ErrIDAppNotFound, ae.ID)

	fake.FailNext(clevertest.EndpointDelete, 403)
	err = c.DeleteApp(t.Context(), orga(), "app_x")
	require.Error(t, err)
	require.False(t, clever.IsNotFound(err))
}

func TestObserver(t *testing.T) {
	type obs struct {
		endpoint string
		status   int
	}
	var mu sync.Mutex
	var seen []obs
	c, fake := newPair(t, func(o *clever.Options) {
		o.Observer = func(api, endpoint string, status int, d time.Duration) {
			require.Equal(t, "clever", api)
			mu.Lock()
			seen = append(seen, obs{endpoint, status})
			mu.Unlock()
		}
	})
	fake.FailNext(clevertest.EndpointGet, 503)
	app, err := c.CreateApp(t.Context(), orga(), createReq("n"))
	require.NoError(t, err)
	_, err = c.GetApp(t.Context(), orga(), app.ID)
	require.NoError(t, err)
	require.Equal(t, []obs{
		{"/organisations/:orga/applications", 200},
		{"/organisations/:orga/applications/:app", 503},
		{"/organisations/:orga/applications/:app", 200},
	}, seen)
}

func TestContextCancelStopsRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var calls atomic.Int32
	c, fake := newPair(t, func(o *clever.Options) {
		o.RetryWaitMin, o.RetryWaitMax = time.Hour, time.Hour
		o.Observer = func(string, string, int, time.Duration) {
			calls.Add(1)
			cancel()
		}
	})
	fake.FailNext(clevertest.EndpointList, 503)
	_, err := c.ListApps(ctx, orga())
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, clever.Retryable(err))
	require.Equal(t, int32(1), calls.Load())
}

func TestTokensNeverInErrors(t *testing.T) {
	c, fake := newPair(t, nil)
	fake.FailNext(clevertest.EndpointCreate, 400)
	fake.FailNext(clevertest.EndpointList, 500, 500, 500, 500)
	var errs []error
	_, err := c.CreateApp(t.Context(), orga(), createReq("n"))
	errs = append(errs, err)
	_, err = c.ListApps(t.Context(), orga())
	errs = append(errs, err)
	_, err = c.GetApp(t.Context(), clever.Orga{ID: orgaID, Token: "bad-token-value"}, "app_1")
	errs = append(errs, err)
	for _, err := range errs {
		require.Error(t, err)
		require.NotContains(t, err.Error(), orgaToken)
		require.NotContains(t, err.Error(), "bad-token-value")
		require.NotErrorIs(t, err, http.ErrAbortHandler)
	}
}
