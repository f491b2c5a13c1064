package executors_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/executors"
)

func TestJobErrorText(t *testing.T) {
	tests := map[string]struct {
		err       *executors.JobError
		want      string
		wantShown string
	}{
		"no cause": {
			err:  &executors.JobError{Public: "flavor XXL is not available"},
			want: "flavor XXL is not available", wantShown: "flavor XXL is not available",
		},
		"cause repeats the public text": {
			err:  &executors.JobError{Public: "flavor XXL is not available", Cause: errors.New("flavor XXL is not available")},
			want: "flavor XXL is not available", wantShown: "flavor XXL is not available",
		},
		"cause extends the public text": {
			err:  &executors.JobError{Public: "push failed", Cause: errors.New("push failed: 403 from remote")},
			want: "push failed: 403 from remote", wantShown: "push failed",
		},
		"independent cause": {
			err:  &executors.JobError{Public: "could not create the host", Cause: errors.New("create app: 500")},
			want: "could not create the host: create app: 500", wantShown: "could not create the host",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.err.Error())
			wrapped := errors.Join(errors.New("launch job 7"), tc.err)
			require.Equal(t, tc.wantShown, executors.PublicMessage(wrapped))
		})
	}
	require.Equal(t, "paas-runner could not provision a host for this job; see the runner's logs",
		executors.PublicMessage(errors.New("internal: token=abc")), "internal errors never reach the job log")
}
