package state

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseResourceName(t *testing.T) {
	tests := map[string]struct {
		prefix, name string
		runner       string
		jobID        int64
		ok           bool
	}{
		"ours":                {"hpd-job-", "hpd-job-3fa9c2d17b04-4821", "3fa9c2d17b04", 4821, true},
		"custom prefix":       {"ci-", "ci-3fa9c2d17b04-1", "3fa9c2d17b04", 1, true},
		"heptapod token":      {"hpd-job-", "hpd-job-a1b2c3d4-77", "a1b2c3d4", 77, true},
		"heptapod glrt token": {"hpd-job-", "hpd-job-glrt-abc-77", "glrt-abc", 77, true},
		"runner prefix":       {"hpd-job-3fa9c2d17b04-", "hpd-job-3fa9c2d17b04-12", "", 12, true},
		"runner prefix other": {"hpd-job-3fa9c2d17b04-", "hpd-job-9c0ffee12345-12", "", 0, false},
		"other prefix":        {"hpd-job-", "web-3fa9c2d17b04-1", "", 0, false},
		"no job id":           {"hpd-job-", "hpd-job-3fa9c2d17b04", "", 0, false},
		"empty job id":        {"hpd-job-", "hpd-job-3fa9c2d17b04-", "", 0, false},
		"non numeric id":      {"hpd-job-", "hpd-job-3fa9c2d17b04-12a", "", 0, false},
		"signed id":           {"hpd-job-", "hpd-job-3fa9c2d17b04-+12", "", 0, false},
		"zero id":             {"hpd-job-", "hpd-job-3fa9c2d17b04-0", "", 0, false},
		"no runner":           {"hpd-job-", "hpd-job--12", "", 0, false},
		"overflow":            {"hpd-job-", "hpd-job-r-99999999999999999999", "", 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			runner, id, ok := ParseResourceName(tc.prefix, tc.name)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.runner, runner)
			require.Equal(t, tc.jobID, id)
		})
	}
}

func TestResourceID(t *testing.T) {
	tests := map[string]struct {
		dump string
		want string
	}{
		"clever":       {`{"id":"app_1","weight":2}`, "app_1"},
		"service":      {`{"app_id":"app_2","netloc":"x"}`, "app_2"},
		"local-docker": {`"hpd-job-a1b2c3d4-7"`, "hpd-job-a1b2c3d4-7"},
		"no id":        {`{"weight":2}`, ""},
		"empty":        {``, ""},
		"null":         {`null`, ""},
		"number":       {`12`, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, ResourceID(json.RawMessage(tc.dump)))
		})
	}
}
