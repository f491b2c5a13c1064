package deploy

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

const testPrefix = "gitlab.example:443/group/dependency_proxy/containers"

// payloadWith returns a job payload with the proxy prefix variable (unless
// empty), extra variables, the main image and services.
func payloadWith(prefix string, vars map[string]string, image any, services any) json.RawMessage {
	vs := []map[string]any{}
	if prefix != "" {
		vs = append(vs, map[string]any{"key": DependencyProxyVariable, "value": prefix, "public": true})
	}
	for k, v := range vars {
		vs = append(vs, map[string]any{"key": k, "value": v, "public": true})
	}
	p := map[string]any{"id": 42, "token": "job-token", "variables": vs, "steps": []any{map[string]any{"name": "script", "script": []string{"a && b <c>"}}}}
	if image != nil {
		p["image"] = image
	}
	if services != nil {
		p["services"] = services
	}
	b, err := marshalJSON(p)
	if err != nil {
		panic(err)
	}
	return b
}

type imageOut struct {
	Name  string `json:"name"`
	Alias string `json:"alias"`
}

func TestRewriteDependencyProxyImage(t *testing.T) {
	tests := []struct {
		image string
		vars  map[string]string
		want  string
	}{
		{image: "debian:bullseye", want: testPrefix + "/library/debian:bullseye"},
		{image: "debian", want: testPrefix + "/library/debian"},
		{image: "heptapod/heptapod:latest", want: testPrefix + "/heptapod/heptapod:latest"},
		{image: "docker.io/library/debian:12", want: testPrefix + "/library/debian:12"},
		{image: "docker.io/debian:12", want: testPrefix + "/library/debian:12"},
		{image: "index.docker.io/heptapod/runner:1", want: testPrefix + "/heptapod/runner:1"},
		{image: "index.docker.io/alpine", want: testPrefix + "/library/alpine"},
		{image: "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", want: testPrefix + "/library/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{image: "alpine:3.19@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", want: testPrefix + "/library/alpine:3.19@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{image: "localhost:5000/x", want: "localhost:5000/x"},
		{image: "localhost/x", want: "localhost/x"},
		{image: "registry.gitlab.com/group/img:1", want: "registry.gitlab.com/group/img:1"},
		{image: "Registry/img", want: "Registry/img"},
		{image: "quay.io/x/y@sha256:abcd", want: "quay.io/x/y@sha256:abcd"},
		{image: "$BASE:$TAG", vars: map[string]string{"BASE": "python", "TAG": "3.12"}, want: testPrefix + "/library/python:3.12"},
		{image: "${REG}/img", vars: map[string]string{"REG": "registry.example"}, want: "${REG}/img"}, // non Docker Hub: original string kept,
		{image: "$NESTED", vars: map[string]string{"NESTED": "$INNER:1", "INNER": "ruby"}, want: testPrefix + "/library/ruby:1"},
		{image: "$SELF", vars: map[string]string{"SELF": "a$SELF"}, want: testPrefix + "/library/aa$SELF"},
		{image: "$UNKNOWN", want: "$UNKNOWN"}, // expands to "": left as is
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			out, err := RewriteDependencyProxy(payloadWith(testPrefix, tc.vars, map[string]any{"name": tc.image, "entrypoint": []string{"sh"}}, nil))
			require.NoError(t, err)
			var p struct {
				Image map[string]any `json:"image"`
			}
			require.NoError(t, json.Unmarshal(out, &p))
			require.Equal(t, tc.want, p.Image["name"])
			require.Equal(t, []any{"sh"}, p.Image["entrypoint"])
			_, hasAlias := p.Image["alias"]
			require.False(t, hasAlias, "the main image never gets an alias")
		})
	}
}

func TestRewriteDependencyProxyServices(t *testing.T) {
	tests := []struct {
		name      string
		service   map[string]any
		wantName  string
		wantAlias string
	}{
		{name: "official with tag", service: map[string]any{"name": "nginx:latest"}, wantName: testPrefix + "/library/nginx:latest", wantAlias: "nginx"},
		{name: "namespaced", service: map[string]any{"name": "heptapod/heptapod:latest"}, wantName: testPrefix + "/heptapod/heptapod:latest", wantAlias: "heptapod-heptapod"},
		{name: "no tag", service: map[string]any{"name": "postgres"}, wantName: testPrefix + "/library/postgres", wantAlias: "postgres"},
		{name: "user alias kept", service: map[string]any{"name": "postgres:16", "alias": "db"}, wantName: testPrefix + "/library/postgres:16", wantAlias: "db"},
		{name: "empty alias replaced", service: map[string]any{"name": "redis:7", "alias": ""}, wantName: testPrefix + "/library/redis:7", wantAlias: "redis"},
		{name: "digest", service: map[string]any{"name": "redis@sha256:abcdef"}, wantName: testPrefix + "/library/redis@sha256:abcdef", wantAlias: "redis"},
		{name: "tag and digest", service: map[string]any{"name": "me/redis:7@sha256:abcdef"}, wantName: testPrefix + "/me/redis:7@sha256:abcdef", wantAlias: "me-redis"},
		{name: "docker.io explicit", service: map[string]any{"name": "docker.io/library/mysql:8"}, wantName: testPrefix + "/library/mysql:8", wantAlias: "docker.io-library-mysql"},
		{name: "index.docker.io", service: map[string]any{"name": "index.docker.io/me/svc"}, wantName: testPrefix + "/me/svc", wantAlias: "index.docker.io-me-svc"},
		{name: "variables", service: map[string]any{"name": "$SVC:$V"}, wantName: testPrefix + "/library/mariadb:11", wantAlias: "mariadb"},
		{name: "private registry unchanged", service: map[string]any{"name": "localhost:5000/x:1"}, wantName: "localhost:5000/x:1"},
		{name: "uppercase domain unchanged", service: map[string]any{"name": "MyRegistry/x"}, wantName: "MyRegistry/x"},
		{name: "without name unchanged", service: map[string]any{"alias": "orphan"}, wantAlias: "orphan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"SVC": "mariadb", "V": "11"}
			out, err := RewriteDependencyProxy(payloadWith(testPrefix, vars, nil, []any{tc.service}))
			require.NoError(t, err)
			var p struct {
				Services []imageOut `json:"services"`
			}
			require.NoError(t, json.Unmarshal(out, &p))
			require.Len(t, p.Services, 1)
			require.Equal(t, tc.wantName, p.Services[0].Name)
			require.Equal(t, tc.wantAlias, p.Services[0].Alias)
		})
	}
}

func TestRewriteDependencyProxyUnchanged(t *testing.T) {
	tests := map[string]json.RawMessage{
		"no prefix variable":   payloadWith("", nil, map[string]any{"name": "debian"}, []any{map[string]any{"name": "nginx"}}),
		"empty prefix":         payloadWith("", map[string]string{DependencyProxyVariable: ""}, map[string]any{"name": "debian"}, nil),
		"only private images":  payloadWith(testPrefix, nil, map[string]any{"name": "quay.io/a/b"}, []any{map[string]any{"name": "localhost:5000/x"}}),
		"no image no services": payloadWith(testPrefix, nil, nil, nil),
		"null image":           json.RawMessage(`{"id":1,"image":null,"services":null,"variables":[{"key":"` + DependencyProxyVariable + `","value":"p.x/y"}]}`),
		"odd shapes":           json.RawMessage(`{"id":1,"image":"debian","services":["nginx",3,{"name":7}],"variables":[{"key":"` + DependencyProxyVariable + `","value":"p.x/y"}]}`),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := RewriteDependencyProxy(in)
			require.NoError(t, err)
			require.Equal(t, string(in), string(out), "payload must be returned byte for byte")
		})
	}
}

func TestRewriteDependencyProxyKeepsEverythingElse(t *testing.T) {
	in := payloadWith(testPrefix+"/", nil, map[string]any{"name": "debian"}, []any{map[string]any{"name": "quay.io/x/y"}, map[string]any{"name": "nginx", "command": []string{"a"}}})
	out, err := RewriteDependencyProxy(in)
	require.NoError(t, err)
	var before, after map[string]any
	require.NoError(t, json.Unmarshal(in, &before))
	require.NoError(t, json.Unmarshal(out, &after))
	require.Contains(t, string(out), "a && b <c>", "no HTML escaping")
	require.Equal(t, testPrefix+"/library/debian", after["image"].(map[string]any)["name"], "trailing / of the prefix trimmed")
	svcs := after["services"].([]any)
	require.Equal(t, before["services"].([]any)[0], svcs[0])
	require.Equal(t, map[string]any{"name": testPrefix + "/library/nginx", "alias": "nginx", "command": []any{"a"}}, svcs[1])
	for k := range before {
		if k != "image" && k != "services" {
			require.Equal(t, before[k], after[k], k)
		}
	}
}

func TestRewriteDependencyProxyErrors(t *testing.T) {
	big := map[string]string{"V0": "x"}
	for i := 1; i < 40; i++ {
		big[fmt.Sprintf("V%d", i)] = fmt.Sprintf("$V%d$V%d", i-1, i-1)
	}
	tests := map[string]json.RawMessage{
		"not json":              json.RawMessage(`{`),
		"not an object":         json.RawMessage(`[1]`),
		"null":                  json.RawMessage(`null`),
		"bad variables":         json.RawMessage(`{"variables":{"key":"x"}}`),
		"exponential expansion": payloadWith(testPrefix, big, map[string]any{"name": "$V39"}, nil),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := RewriteDependencyProxy(in)
			require.Error(t, err)
		})
	}
}

func TestServiceAlias(t *testing.T) {
	tests := map[string]string{
		"nginx:latest":             "nginx",
		"heptapod/heptapod:latest": "heptapod-heptapod",
		"nginx":                    "nginx",
		"nginx@sha256:abc":         "nginx",
		"a/b:1@sha256:abc":         "a-b",
		"localhost:5000/x":         "localhost:5000-x",
		"localhost:5000/x:2":       "localhost:5000-x",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			require.Equal(t, want, ServiceAlias(in))
		})
	}
}

func FuzzRewriteDependencyProxy(f *testing.F) {
	f.Add([]byte(payloadWith(testPrefix, nil, map[string]any{"name": "debian"}, []any{map[string]any{"name": "nginx:1@sha256:ab"}})))
	f.Add([]byte(`{"image":{"name":"$A"},"variables":[{"key":"A","value":"${A}x"},{"key":"` + DependencyProxyVariable + `","value":"h.x/p"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := RewriteDependencyProxy(in)
		if err != nil {
			return
		}
		require.True(t, json.Valid(out), "output must be valid JSON")
		var before, after map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(in, &before))
		require.NoError(t, json.Unmarshal(out, &after))
		require.Len(t, after, len(before))
		for k := range before {
			_, ok := after[k]
			require.True(t, ok, "key %q lost", k)
		}
	})
}
