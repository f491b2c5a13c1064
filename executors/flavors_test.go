package executors_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/quota"
)

func TestStaticFlavors(t *testing.T) {
	tests := map[string]struct {
		flavors   map[string]config.Flavor
		def       string
		requested string
		want      string
		wantErr   bool
	}{
		"no local_flavors: M":      {want: config.DefaultLocalDefaultFlavor},
		"local default":            {flavors: map[string]config.Flavor{"S": {MemoryMiB: 1024}, "L": {MemoryMiB: 8192}}, def: "S", want: "S"},
		"requested":                {flavors: map[string]config.Flavor{"S": {MemoryMiB: 1024}, "L": {MemoryMiB: 8192}}, def: "S", requested: "L", want: "L"},
		"unknown is a job error":   {requested: "XXL", wantErr: true},
		"empty default falls back": {def: "", want: config.DefaultLocalDefaultFlavor},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &config.Runner{LocalFlavors: tc.flavors, LocalDefaultFlavor: tc.def}
			flavors, def := executors.StaticFlavors(r)
			job := &coordinator.Job{}
			if tc.requested != "" {
				job.Variables = []coordinator.Variable{{Key: quota.FlavorVariable, Value: tc.requested}}
			}
			fl, err := executors.SelectFlavor(flavors, job, def, "")
			if tc.wantErr {
				je, ok := errors.AsType[*executors.JobError](err)
				require.True(t, ok, "error %v is not a *JobError", err)
				require.Equal(t, coordinator.ScriptFailure, je.Reason)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, fl.Name)
			require.Equal(t, tc.want, fl.APIName)
		})
	}
}
