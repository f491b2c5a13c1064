package clever_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/coordinator/gitlabfake"
	"gitlab.com/paas-runner/paas-runner/executors"
	cleverexec "gitlab.com/paas-runner/paas-runner/executors/clever"
)

// multiTenant sets up a coordinator with groups alpha (id 101, orga A),
// beta (id 102, orga B) and gamma (id 103, no attributes), and a
// multi-tenant executor reading them.
func multiTenant(t *testing.T) (*env, *gitlabfake.Server, *coordinator.Client) {
	t.Helper()
	gl := gitlabfake.New(gitlabfake.Options{Seed: 2}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(runnerToken)
	gl.AddGroup(101, "alpha", map[string]string{"cc_orga_id": orgaA, "cc_orga_token": tokenA})
	gl.AddGroup(102, "beta", map[string]string{"cc_orga_id": orgaB, "cc_orga_token": tokenB})
	gl.AddGroup(103, "gamma", map[string]string{"unrelated": "x"})
	coord := coordinator.New(gl.URL(), runnerToken, coordinator.Options{RetryMax: -1})
	e := newEnv(t, func(r *config.Runner) {
		r.URL = gl.URL()
		r.CCMultiTenant = true
		r.CCOrgaID, r.CCToken = "", ""
		r.CCGitlabNamespaceAttributesToken = gitlabfake.DefaultAdminToken
	}, func(o *cleverexec.Options) { o.Groups = coord })
	return e, gl, coord
}

// acquire enqueues a job of project and acquires it; rootID overrides
// job_info.root_namespace_id (0 = absent, CI_PROJECT_ROOT_NAMESPACE is used).
func acquire(t *testing.T, gl *gitlabfake.Server, coord *coordinator.Client, project string, rootID int64) *coordinator.Job {
	t.Helper()
	gl.Enqueue(gitlabfake.JobSpec{RunnerToken: runnerToken, Project: project})
	job, err := coord.RequestJob(t.Context())
	require.NoError(t, err)
	require.NotNil(t, job)
	job.JobInfo.RootNamespaceID = rootID
	return job
}

func TestMultiTenant(t *testing.T) {
	tests := []struct {
		name     string
		project  string
		rootID   int64
		wantOrga string
		token    string
		public   []string // substrings of the job-log message on failure
	}{
		{"group by root namespace id", "alpha/app", 101, orgaA, tokenA, nil},
		{"group by CI_PROJECT_ROOT_NAMESPACE", "beta/sub/app", 0, orgaB, tokenB, nil},
		{"group without attributes", "gamma/app", 0, "", "", []string{"gamma", "cc_orga_id", "cc_orga_token"}},
		{"unknown group", "delta/app", 0, "", "", []string{"delta", "custom attributes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, gl, coord := multiTenant(t)
			job := acquire(t, gl, coord, tc.project, tc.rootID)
			spec := executors.JobSpec{Job: job, ResourceName: executors.ResourceName(e.runner, job.ID)}
			res, err := e.exec.Provision(t.Context(), spec)
			if tc.public != nil {
				require.Nil(t, res)
				var je *executors.JobError
				require.ErrorAs(t, err, &je, "want a JobError, got %v", err)
				for _, s := range tc.public {
					require.Contains(t, je.Public, s)
				}
				require.Equal(t, coordinator.RunnerSystemFailure, je.Reason)
				requireNoSecrets(t, "error", err.Error(), tokenA, tokenB, runnerToken, gitlabfake.DefaultAdminToken)
				require.Empty(t, e.fake.Apps())
				return
			}
			require.NoError(t, err)
			app, ok := e.fake.App(res.ID())
			require.True(t, ok)
			require.Equal(t, tc.wantOrga, app.Orga, "the app is created in the group's organisation")

			launched, err := e.exec.Launch(t.Context(), res, spec)
			require.NoError(t, err, "the push authenticates with the orga token")
			_, pushed := e.fake.Pushed(res.ID())
			require.True(t, pushed)

			// A restart: the dump holds no token, Restore re-resolves it.
			raw, err := e.exec.Dump(launched)
			require.NoError(t, err)
			requireNoSecrets(t, "dump", string(raw), tokenA, tokenB)
			restored, err := e.exec.Restore(t.Context(), raw)
			require.NoError(t, err)
			require.NoError(t, e.exec.Decommission(t.Context(), restored))
			require.Empty(t, e.fake.Live())

			listed, err := e.exec.List(t.Context())
			require.NoError(t, err)
			require.Empty(t, listed)
		})
	}
}

func TestMultiTenantCachesGroups(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	gl := gitlabfake.New(gitlabfake.Options{Seed: 3}).Start()
	t.Cleanup(gl.Close)
	gl.AddRunner(runnerToken)
	gl.AddGroup(101, "alpha", map[string]string{"cc_orga_id": orgaA, "cc_orga_token": tokenA})
	coord := coordinator.New(gl.URL(), runnerToken, coordinator.Options{})
	e := newEnv(t, func(r *config.Runner) {
		r.URL = gl.URL()
		r.CCMultiTenant = true
		r.CCGitlabNamespaceAttributesToken = gitlabfake.DefaultAdminToken
	}, func(o *cleverexec.Options) { o.Groups = coord; o.Now = func() time.Time { return now } })

	attrCalls := func() int { return gl.Requests("/groups/:id/custom_attributes") }
	var ids []string
	for i, advance := range []time.Duration{0, time.Minute, 10 * time.Minute} {
		now = now.Add(advance)
		job := acquire(t, gl, coord, "alpha/app", 101)
		res, err := e.exec.Provision(t.Context(), executors.JobSpec{Job: job, ResourceName: executors.ResourceName(e.runner, job.ID)})
		require.NoError(t, err)
		ids = append(ids, res.ID())
		require.Equal(t, []int{1, 1, 2}[i], attrCalls(), "step %d", i)
	}
	listed, err := e.exec.List(t.Context())
	require.NoError(t, err)
	require.Len(t, listed, 3, "List covers the organisations seen")
	for _, l := range listed {
		require.Contains(t, ids, l.ID)
		// Reconciliation deletes orphans with Adopt given only the job id
		// parsed from the name.
		res, err := e.exec.Adopt(t.Context(), l.Name, &coordinator.Job{ID: 1})
		require.NoError(t, err)
		require.NotNil(t, res)
		require.NoError(t, e.exec.Decommission(t.Context(), res))
	}
	require.Empty(t, e.fake.Live())
}
