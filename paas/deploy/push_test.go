package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
)

const (
	testUser     = "Jenkins"
	testPassword = "s3cret-clever-token-PUSH"
)

func testContext() *Context {
	return &Context{Files: []File{
		{Name: "job.json", Mode: 0o600, Data: []byte(`{"id":1}`)},
		{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM scratch\n")},
		{Name: "paas-runner", Mode: 0o755, Data: []byte("#!/bin/true\n")},
	}}
}

func TestPush(t *testing.T) {
	srv := newGitServer(t, testUser, testPassword)
	good := Auth{Username: testUser, Password: config.Secret(testPassword)}
	tests := []struct {
		name    string
		branch  string
		auth    Auth
		prepare func(t *testing.T, repo string)
		ctx     func(t *testing.T) context.Context
		wantErr error
		wantAny bool
		wantRef string
	}{
		{name: "first push to master", auth: good, wantRef: "refs/heads/master"},
		{name: "other branch", branch: "main", auth: good, wantRef: "refs/heads/main"},
		{
			name: "already pushed",
			auth: good,
			prepare: func(t *testing.T, repo string) {
				t.Helper()
				require.NoError(t, Push(t.Context(), srv.URL+"/"+repo+".git", good, testContext(), ""))
			},
			wantErr: ErrAlreadyPushed,
			wantRef: "refs/heads/master",
		},
		{name: "wrong password", auth: Auth{Username: testUser, Password: "nope-wrong"}, wantAny: true},
		{name: "no credentials", wantAny: true},
		{
			name: "push rejected by the remote",
			auth: good,
			prepare: func(t *testing.T, repo string) {
				t.Helper()
				srv.rejectPushes(t, repo)
			},
			wantAny: true,
		},
		{
			name: "cancelled context",
			auth: good,
			ctx: func(t *testing.T) context.Context {
				t.Helper()
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			wantErr: context.Canceled,
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := "app" + string(rune('a'+i))
			url := srv.newRepo(t, repo)
			if tc.prepare != nil {
				tc.prepare(t, repo)
			}
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			err := Push(ctx, url, tc.auth, testContext(), tc.branch)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.wantAny:
				require.Error(t, err)
				require.NotErrorIs(t, err, ErrAlreadyPushed, "unexpected ErrAlreadyPushed: %v", err)
			default:
				require.NoError(t, err)
			}
			if err != nil {
				t.Logf("push error: %v", err)
				require.NotContains(t, err.Error(), testPassword)
			}
			refs := srv.refs(t, repo)
			if tc.wantRef == "" {
				require.Empty(t, strings.TrimSpace(refs))
				return
			}
			require.Equal(t, tc.wantRef, strings.TrimSpace(refs))
			ref := strings.TrimPrefix(tc.wantRef, "refs/heads/")
			require.Equal(t, "FROM scratch\n", srv.show(t, repo, ref, "Dockerfile"))
			require.JSONEq(t, `{"id":1}`, srv.show(t, repo, ref, "job.json"))
			log := srv.git(t, "--git-dir", srv.root+"/"+repo+".git", "log", "--format=%an <%ae>|%s", ref)
			require.Equal(t, "paas-runner <paas-runner@localhost>|Job definition\n", log)
			tree := srv.git(t, "--git-dir", srv.root+"/"+repo+".git", "ls-tree", ref)
			require.Contains(t, tree, "100755 blob")
			require.Contains(t, tree, "\tpaas-runner\n")
		})
	}
}

func TestPushRejectsBadFileNames(t *testing.T) {
	srv := newGitServer(t, testUser, testPassword)
	url := srv.newRepo(t, "bad")
	c := &Context{Files: []File{{Name: "dir/file", Data: []byte("x")}}}
	err := Push(t.Context(), url, Auth{Username: testUser, Password: testPassword}, c, "")
	require.ErrorContains(t, err, "invalid file name")
	require.Empty(t, strings.TrimSpace(srv.refs(t, "bad")))
}
