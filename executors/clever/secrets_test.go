package clever_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	cleverexec "gitlab.com/paas-runner/paas-runner/executors/clever"
	"gitlab.com/paas-runner/paas-runner/paas/clever/clevertest"
)

// TestNoTokenLeaks drives successes and failures with debug logging and
// greps every log line, error and pushed file for the Clever tokens and the
// runner token.
func TestNoTokenLeaks(t *testing.T) {
	e := newEnv(t, func(r *config.Runner) { r.CCDeploymentRepoTimeout = 0.05 }, nil)
	var errs []error
	var pushed []map[string][]byte
	run := func(inject func(*clevertest.Server)) {
		e.fake.RejectPushes(false)
		e.fake.SetRepoReadyAfter(0)
		inject(e.fake)
		spec := e.spec(t, coordinator.Variable{Key: "CI_PROJECT_ROOT_NAMESPACE", Value: "acme"})
		res, err := e.exec.Provision(t.Context(), spec)
		errs = append(errs, err)
		if res == nil {
			return
		}
		if err != nil {
			errs = append(errs, e.exec.Decommission(t.Context(), res))
			return
		}
		launched, err := e.exec.Launch(t.Context(), res, spec)
		errs = append(errs, err)
		if files, ok := e.fake.Pushed(res.ID()); ok {
			pushed = append(pushed, files)
		}
		if launched != nil {
			_, err = e.exec.Check(t.Context(), launched)
			errs = append(errs, err)
			raw, err := e.exec.Dump(launched)
			require.NoError(t, err)
			requireNoSecrets(t, "dump", string(raw), tokenA, tokenB, runnerToken)
		}
		errs = append(errs, e.exec.Decommission(t.Context(), res))
	}
	run(func(*clevertest.Server) {})
	run(func(f *clevertest.Server) { f.FailNext(clevertest.EndpointCreate, 503, 400) })
	run(func(f *clevertest.Server) { f.FailNext(clevertest.EndpointEnv, 500, 500, 500, 500) })
	run(func(f *clevertest.Server) { f.SetRepoReadyAfter(-1) })
	run(func(f *clevertest.Server) { f.RejectPushes(true) })
	run(func(f *clevertest.Server) { f.FailNext(clevertest.EndpointDelete, 503, 401, 401, 401) })
	_, err := e.exec.List(t.Context())
	errs = append(errs, err)

	require.Len(t, pushed, 2, "the success and the delete-fault scenarios pushed")
	nonNil := 0
	for _, err := range errs {
		if err != nil {
			nonNil++
			requireNoSecrets(t, "error", err.Error(), tokenA, tokenB, runnerToken)
		}
	}
	require.GreaterOrEqual(t, nonNil, 5, "the failure scenarios did fail")
	logs := e.logText(t)
	require.Contains(t, logs, "clever app created", "logs were captured")
	requireNoSecrets(t, "logs", logs, tokenA, tokenB, runnerToken)
	for _, files := range pushed {
		for name, data := range files {
			// runner.toml forwards the [[runners]] table, but the runner
			// token is replaced by the runner's short id (paas/deploy).
			requireNoSecrets(t, "pushed "+name, string(data), tokenA, tokenB, runnerToken)
		}
	}
}

func TestDumpRestore(t *testing.T) {
	e := newEnv(t, nil, nil)
	spec := e.spec(t)
	res, err := e.exec.Provision(t.Context(), spec)
	require.NoError(t, err)
	launched, err := e.exec.Launch(t.Context(), res, spec)
	require.NoError(t, err)
	raw, err := e.exec.Dump(launched)
	require.NoError(t, err)
	var d map[string]any
	require.NoError(t, json.Unmarshal(raw, &d))
	require.ElementsMatch(t, []string{"id", "gitlab_namespace", "weight", "launched", "deploy_url", "name", "orga_id"}, keys(d))
	require.Equal(t, res.ID(), d["id"])
	require.Nil(t, d["gitlab_namespace"])
	require.Equal(t, true, d["launched"])
	require.Equal(t, orgaA, d["orga_id"])
	require.Equal(t, spec.ResourceName, d["name"])

	tests := []struct {
		name     string
		dump     string
		weight   float64
		launched bool
		wantErr  bool
	}{
		{"heptapod dump", `{"id": "` + res.ID() + `", "gitlab_namespace": null, "weight": 13.45, "launched": true, "deploy_url": "https://x/app.git"}`, 13.45, true, false},
		{"heptapod dump without weight", `{"id": "` + res.ID() + `", "launched": false, "deploy_url": ""}`, 32768, false, false},
		{"no id", `{"weight": 1}`, 0, false, true},
		{"not json", `"app_x"`, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.exec.Restore(t.Context(), json.RawMessage(tc.dump))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.weight, got.Weight(), 1e-9)
			require.Equal(t, tc.launched, got.Launched())
			st, err := e.exec.Check(t.Context(), got)
			require.NoError(t, err)
			want := executors.LivenessUnknown
			if tc.launched {
				want = executors.Alive
			}
			require.Equal(t, want, st.Liveness, "the restored resource resolves its organisation again")
		})
	}
	restored, err := e.exec.Restore(t.Context(), raw)
	require.NoError(t, err)
	require.NoError(t, e.exec.Decommission(t.Context(), restored))
	require.Empty(t, e.fake.Live())
}

func TestRestoreIntoAnotherOrgaRefusesToDelete(t *testing.T) {
	e := newEnv(t, nil, nil)
	spec := e.spec(t)
	res, err := e.exec.Provision(t.Context(), spec)
	require.NoError(t, err)
	raw, err := e.exec.Dump(res)
	require.NoError(t, err)
	// The operator moved the runner to organisation B.
	moved := newEnv(t, func(r *config.Runner) { r.CCAPIURL = e.fake.APIURL(); r.CCOrgaID, r.CCToken = orgaB, tokenB }, nil)
	restored, err := moved.exec.Restore(t.Context(), raw)
	require.NoError(t, err)
	err = moved.exec.Decommission(t.Context(), restored)
	require.Error(t, err, "deleting with the wrong organisation would report a leak as success")
	require.Len(t, e.fake.Live(), 1)
	require.NoError(t, e.exec.Decommission(t.Context(), res))
}

func TestListIncludesHeptapodNames(t *testing.T) {
	e := newEnv(t, nil, nil)
	spec := e.spec(t)
	mine, err := e.exec.Provision(t.Context(), spec)
	require.NoError(t, err)
	// An app left by the Heptapod runner with the same runner token, and
	// one of another runner.
	heptapodName := "hpd-job-" + runnerToken[:8] + "-77"
	for _, name := range []string{heptapodName, "hpd-job-otherrun-78"} {
		other := e.spec(t)
		other.ResourceName = name
		res, err := e.exec.Provision(t.Context(), other)
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.exec.Decommission(t.Context(), res) })
	}
	listed, err := e.exec.List(t.Context())
	require.NoError(t, err)
	var names []string
	for _, l := range listed {
		names = append(names, l.Name)
	}
	require.ElementsMatch(t, []string{mine.Name(), heptapodName}, names)
	require.Contains(t, e.logText(t), "Heptapod runner")
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAgentInnerRunner(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "paas-runner")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755))
	e := newEnv(t, func(r *config.Runner) { r.InnerRunner = config.InnerRunnerAgent }, func(o *cleverexec.Options) {
		o.Deploy.AgentBinary = bin
	})
	spec := e.spec(t)
	res, err := e.exec.Provision(t.Context(), spec)
	require.NoError(t, err)
	_, err = e.exec.Launch(t.Context(), res, spec)
	require.NoError(t, err)
	files, ok := e.fake.Pushed(res.ID())
	require.True(t, ok)
	require.Equal(t, "#!/bin/true\n", string(files["paas-runner"]), "the agent binary is pushed with the context")
	require.Contains(t, string(files["Dockerfile"]), "alpine:3", "the agent runs in the job's image")
	require.NoError(t, e.exec.Decommission(t.Context(), res))
}
