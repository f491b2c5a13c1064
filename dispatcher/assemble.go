package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/coordinator"
	"gitlab.com/paas-runner/paas-runner/executors"
	"gitlab.com/paas-runner/paas-runner/state"
)

// AssembleOptions tune Assemble. The zero value is usable.
type AssembleOptions struct {
	// ConfigPath is the configuration file's path: the runner system id
	// file is kept next to it (empty: no system id is sent).
	ConfigPath string
	// Version and Revision are advertised to coordinators.
	Version, Revision string
	// Observer receives dispatcher events (metrics).
	Observer Observer
	// CoordinatorObserver is called for every coordinator request, and
	// every request executors make to their platform's API (metrics).
	CoordinatorObserver coordinator.Observer
	// CoordinatorTimeout bounds each coordinator request attempt (default
	// the client's, 30 s).
	CoordinatorTimeout time.Duration
	// Store replaces the store Assemble would open (tests, dev mode).
	Store state.Store
	// NoLock skips the state file lock (tests running two dispatchers on
	// one file on purpose).
	NoLock bool
	// Force is passed to Options.Force.
	Force <-chan struct{}
	// Tuning is passed to Options.Tuning.
	Tuning Tuning
}

// Assemble builds a ready-to-Run dispatcher from a validated configuration:
// it locks and opens the state store (or a memory store, with a loud
// warning, when state_file is unset), builds one coordinator client and
// one executor per runner (executor kinds must be registered, i.e. their
// packages imported). The returned cleanup closes the store and releases
// the lock; call it after Run returned. `paas-runner run` and
// `paas-runner dev` share it.
func Assemble(cfg *config.Config, log logrus.FieldLogger, o AssembleOptions) (*Dispatcher, func(ctx context.Context) error, error) {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	var cleanups []func(ctx context.Context) error
	cleanup := func(ctx context.Context) error {
		var errs []error
		for _, c := range slices.Backward(cleanups) {
			errs = append(errs, c(ctx))
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (*Dispatcher, func(context.Context) error, error) {
		_ = cleanup(context.Background())
		return nil, nil, err
	}

	store := o.Store
	if store == nil {
		if cfg.StateFile == "" {
			log.Warn("WARNING: state_file is not set: tracked jobs live in memory only; a restart or crash LEAKS every provisioned resource and leaves jobs hanging. Set state_file in production.")
			store = state.NewMemory()
		} else {
			if !o.NoLock {
				unlock, err := state.Lock(cfg.StateFile)
				if err != nil {
					return fail(fmt.Errorf("lock state file: %w", err))
				}
				cleanups = append(cleanups, func(context.Context) error { unlock(); return nil })
			}
			fs, err := state.Open(cfg.StateFile, log.WithField("component", "state"), state.WithHeptapodRunners(state.HeptapodRunners(cfg.Runners)))
			if err != nil {
				return fail(fmt.Errorf("open state: %w", err))
			}
			store = fs
		}
		cleanups = append(cleanups, store.Close)
	}

	systemID := ""
	if o.ConfigPath != "" {
		id, err := coordinator.LoadSystemID(o.ConfigPath)
		if err != nil {
			log.WithError(err).Warn("cannot load or create the runner system id; requesting jobs without it")
		} else {
			systemID = id
		}
	}
	build := func(r *config.Runner) (executors.Executor, Coordinator, error) {
		cl := coordinator.New(r.URL, r.Token, coordinator.Options{
			Logger:   log.WithFields(logrus.Fields{"runner": r.Label(), "component": "coordinator"}),
			Timeout:  o.CoordinatorTimeout,
			Observer: o.CoordinatorObserver,
			SystemID: systemID,
			Version:  o.Version,
			Revision: o.Revision,
		})
		ex, err := executors.New(r, executors.Deps{
			Logger:          log.WithFields(logrus.Fields{"runner": r.Label(), "executor": r.Executor}),
			Coordinator:     cl,
			RequestObserver: o.CoordinatorObserver,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("build executor of runner %q: %w", r.Label(), err)
		}
		return ex, cl, nil
	}
	execs := map[string]executors.Executor{}
	coords := map[string]Coordinator{}
	for i := range cfg.Runners {
		r := &cfg.Runners[i]
		ex, cl, err := build(r)
		if err != nil {
			return fail(err)
		}
		execs[r.ShortID()] = ex
		coords[r.ShortID()] = cl
	}
	d, err := New(cfg, Options{
		Logger:       log,
		Store:        store,
		Executors:    execs,
		Coordinators: coords,
		NewRunner:    build,
		Observer:     o.Observer,
		Force:        o.Force,
		Tuning:       o.Tuning,
	})
	if err != nil {
		return fail(err)
	}
	return d, cleanup, nil
}
