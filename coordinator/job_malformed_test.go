package coordinator_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/coordinator"
)

func TestParseJobMalformed(t *testing.T) {
	tests := map[string]struct {
		raw      string
		reported bool // id and token readable: the job can be failed
	}{
		"wrong type of a field":   {raw: `{"id": 7, "token": "glcbt-secret", "steps": "oops"}`, reported: true},
		"wrong type of variables": {raw: `{"id": 8, "token": "glcbt-secret", "variables": {"a": 1}}`, reported: true},
		"not json":                {raw: `{"id": 9, "token": `},
		"id unreadable":           {raw: `{"id": "x", "token": "glcbt-secret", "steps": "oops"}`},
		"no token":                {raw: `{"id": 10, "steps": "oops"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := coordinator.ParseJob([]byte(tc.raw))
			require.Error(t, err)
			require.NotContains(t, err.Error(), "glcbt-secret")
			mje, ok := errors.AsType[*coordinator.MalformedJobError](err)
			require.Equal(t, tc.reported, ok)
			if ok {
				require.ErrorIs(t, err, coordinator.ErrMalformedJob)
				require.Equal(t, "glcbt-secret", mje.Token.Reveal())
				require.Positive(t, mje.ID)
			}
		})
	}
}
