package executortest

import (
	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/executors"
)

// init makes executor = "fake" available to executors.New in the binaries
// that import this package: tests only (production code never imports
// executortest, and config rejects "fake" unless config.AllowFakeExecutor).
func init() {
	executors.Register(config.ExecutorFake, Factory(DefaultCloud(), Options{}))
}

// Factory returns an executors.Factory building Fakes on cloud with opts
// (the Logger of Deps is used when opts has none). Tests that go through
// executors.New may re-register kind config.ExecutorFake with their own
// Cloud and knobs.
func Factory(cloud *Cloud, opts Options) executors.Factory {
	return func(r *config.Runner, deps executors.Deps) (executors.Executor, error) {
		o := opts
		if o.Logger == nil {
			o.Logger = deps.Logger
		}
		return NewFake(cloud, r, o), nil
	}
}
