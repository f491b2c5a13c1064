package config

import (
	"bytes"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"
)

func TestInnerConfig(t *testing.T) {
	cfg, err := Load("testdata/all-keys.good.toml")
	require.NoError(t, err)

	tests := []struct {
		name   string
		runner int
		want   map[string]any
	}{
		{
			name:   "clever runner forwards Extra with real secrets",
			runner: 0,
			want: map[string]any{
				"name":                                  "clever",
				"url":                                   "https://heptapod.example.com/",
				"id":                                    int64(42),
				"token":                                 "allkeysRunnerTokenClever",
				"executor":                              "docker",
				"heptapod_paas_runner_helper_image":     "registry.example.com/helper:1",
				"paas_keep_resources_for_reuse_seconds": float64(60),
				"limit":                                 int64(3),
				"custom_build_dir":                      map[string]any{"enabled": true},
				"environment":                           []any{"PLAIN=visible", "DEPLOY_TOKEN=allkeysEnvTokenValue"},
				"cache": map[string]any{
					"Type":   "s3",
					"Shared": true,
					"s3": map[string]any{
						"ServerAddress": "s3.example.com",
						"AccessKey":     "allkeysS3AccessKey",
						"SecretKey":     "allkeysS3SecretKey",
						"SessionToken":  "allkeysS3SessionToken",
						"BucketName":    "ci",
					},
					"gcs": map[string]any{
						"AccessID":   "ci@example.iam.gserviceaccount.com",
						"PrivateKey": "allkeysGCSPrivateKey",
					},
					"azure": map[string]any{
						"AccountName": "ci",
						"AccountKey":  "allkeysAzureAccountKey",
					},
				},
				"docker": map[string]any{
					"image":    "debian:bookworm",
					"volumes":  []any{"/cache"},
					"services": []map[string]any{{"name": "postgres:16", "alias": "db"}},
				},
			},
		},
		{
			name:   "local runner keeps host, flavors and agent keys",
			runner: 1,
			want: map[string]any{
				"name":                                  "local-docker",
				"url":                                   "http://gitlab.local:8080",
				"token":                                 "allkeysRunnerTokenDocker",
				"executor":                              "docker",
				"heptapod_paas_runner_helper_image":     DefaultHeptapodPaasRunnerHelperImage,
				"paas_keep_resources_for_reuse_seconds": float64(DefaultKeepResourcesForReuseSeconds),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &cfg.Runners[tc.runner]
			got := r.InnerConfig()
			require.Equal(t, tc.want, got)
			// It serialises as a runner.toml gitlab-runner can read.
			var buf bytes.Buffer
			require.NoError(t, toml.NewEncoder(&buf).Encode(map[string]any{"runners": []map[string]any{got}}))
			var back struct {
				Runners []map[string]any `toml:"runners"`
			}
			_, err := toml.Decode(buf.String(), &back)
			require.NoError(t, err)
			require.Equal(t, "docker", back.Runners[0]["executor"])
			require.NotContains(t, buf.String(), Masked)
			// InnerConfig is a copy: changing it leaves the runner alone.
			got["token"] = "changed"
			if c, ok := got["cache"].(map[string]any); ok {
				c["Type"] = "changed"
			}
			require.NotEqual(t, "changed", r.InnerConfig()["token"])
			require.NotContains(t, fmtExtra(r), "changed")
		})
	}
}

func fmtExtra(r *Runner) string {
	var buf bytes.Buffer
	_ = toml.NewEncoder(&buf).Encode(r.ForwardedTable())
	return buf.String()
}

func TestExtraSecretWrapping(t *testing.T) {
	tests := []struct {
		name   string
		path   []string
		value  any
		secret bool
	}{
		{"s3 access key", []string{"cache", "s3", "AccessKey"}, "x", true},
		{"lower-case s3 key", []string{"cache", "s3", "accesskey"}, "x", true},
		{"gcs private key", []string{"cache", "gcs", "PrivateKey"}, "x", true},
		{"azure account key", []string{"cache", "azure", "AccountKey"}, "x", true},
		{"any token", []string{"docker", "registry_token"}, "x", true},
		{"any password", []string{"ssh", "password"}, "x", true},
		{"bucket", []string{"cache", "s3", "BucketName"}, "x", false},
		{"image", []string{"docker", "image"}, "x", false},
		{"non-string", []string{"cache", "s3", "AccessKey"}, int64(1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := maskValue(tc.path, tc.value)
			_, isSecret := got.(Secret)
			require.Equal(t, tc.secret, isSecret)
			require.Equal(t, tc.value, revealValue(got))
		})
	}
}
