package main

// Executor kinds available to every command (run, dev, state reconcile,
// register): each package registers its kind with executors.Register in
// init.
import (
	_ "gitlab.com/paas-runner/paas-runner/executors/clever"
	_ "gitlab.com/paas-runner/paas-runner/executors/localdocker"
	_ "gitlab.com/paas-runner/paas-runner/executors/localprocess"
)
