package executors

import (
	"errors"
	"fmt"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/quota"
)

// StaticFlavors returns the flavor table of an executor without a remote
// catalogue (local_flavors, else config.DefaultLocalFlavors) and the flavor
// of jobs that ask for none (local_default_flavor, else
// config.DefaultLocalDefaultFlavor).
func StaticFlavors(r *config.Runner) (flavors quota.Flavors, def string) {
	flavors = quota.Flavors{}
	for name, f := range r.StaticFlavors() {
		flavors[name] = quota.Flavor{Name: name, APIName: name, MemoryMiB: f.MemoryMiB, CPUs: f.CPUs}
	}
	def = r.LocalDefaultFlavor
	if def == "" {
		def = config.DefaultLocalDefaultFlavor
	}
	return flavors, def
}

// SelectFlavor chooses the flavor of job in flavors: the one its
// CI_CLEVER_CLOUD_FLAVOR names, else def; max, when not empty, is the
// heaviest accepted (see quota.Select). job may be nil (no request). An
// invalid choice is a *JobError (script_failure) whose public message is
// the *quota.FlavorError's.
func SelectFlavor(flavors quota.Flavors, job *coordinator.Job, def, maxFlavor string) (quota.Flavor, error) {
	var requested string
	if job != nil {
		requested, _ = job.Variable(quota.FlavorVariable)
	}
	fl, err := quota.Select(flavors, requested, def, maxFlavor)
	if err != nil {
		if fe, ok := errors.AsType[*quota.FlavorError](err); ok {
			return quota.Flavor{}, &JobError{Public: fe.Msg, Reason: coordinator.ScriptFailure, Cause: err}
		}
		return quota.Flavor{}, fmt.Errorf("select flavor: %w", err)
	}
	return fl, nil
}
