package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/dispatcher"
)

// cleanupTimeout bounds closing the state store after the dispatcher
// stopped.
const cleanupTimeout = 30 * time.Second

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run the daemon: poll the coordinators and provision one fresh host per job",
		ArgsUsage: "CONFIG",
		Description: "Signals: SIGTERM/SIGINT stop gracefully (no new jobs, in-flight launches finish\n" +
			"within shutdown_timeout, state flushed; a second signal forces an immediate\n" +
			"flushed exit); SIGHUP reloads the configuration (limits, runners added or\n" +
			"removed); SIGUSR1 logs a dump of the tracked jobs (no secrets).",
		Action: runAction,
	}
}

// loadDaemonConfig loads and validates CONFIG; every problem is printed and
// the exit code is 2.
func loadDaemonConfig(c *cli.Context, path string) (*config.Config, error) {
	cfg, err := config.LoadAndValidate(path)
	if err == nil {
		return cfg, nil
	}
	if ve, ok := errors.AsType[*config.ValidationError](err); ok {
		for _, p := range ve.Problems {
			fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", path, p)
		}
		return nil, cli.Exit(fmt.Sprintf("%s: %d configuration problem(s)", path, len(ve.Problems)), 2)
	}
	return nil, cli.Exit(fmt.Sprintf("%s: %v", path, err), 2)
}

func runAction(c *cli.Context) error {
	path := c.Args().First()
	if path == "" || c.NArg() > 1 {
		return cli.Exit("usage: paas-runner run CONFIG", 2)
	}
	cfg, err := loadDaemonConfig(c, path)
	if err != nil {
		return err
	}
	if err := configureLogging(c, cfg.LogLevel, cfg.LogFormat); err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	for _, n := range cfg.Notices() {
		log.Debug(n)
	}

	reg, m, err := newDaemonMetrics()
	if err != nil {
		return cli.Exit(fmt.Sprintf("paas-runner run: %v", err), 1)
	}
	force := make(chan struct{})
	d, cleanup, err := dispatcher.Assemble(cfg, log, dispatcher.AssembleOptions{
		ConfigPath: path, Version: version, Revision: revision, Force: force,
		Observer: m, CoordinatorObserver: m.ObserveRequest,
	})
	if err != nil {
		return cli.Exit(fmt.Sprintf("paas-runner run: %v", err), 1)
	}
	m.SetSnapshot(d.Snapshot)
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), cleanupTimeout)
		defer cancel()
		if err := cleanup(ctx); err != nil {
			log.WithError(err).Error("closing the state store failed")
		}
	}()

	stopMetrics, err := startMetricsServer(c.Context, cfg, reg, d, log)
	if err != nil {
		return cli.Exit(fmt.Sprintf("paas-runner run: %v", err), 1)
	}
	defer stopMetrics()

	runCtx, stop := context.WithCancel(c.Context)
	defer stop()
	notifier := systemdNotifier{log: log}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	handlerDone := make(chan struct{})
	defer func() { <-handlerDone }()
	defer stop()
	go func() {
		defer close(handlerDone)
		handleSignals(runCtx, c, path, d, reg, sigs, stop, force, notifier)
	}()
	go func() {
		select {
		case <-d.Ready():
			notifier.ready()
			notifier.status("polling")
		case <-runCtx.Done():
		}
	}()
	go notifier.watchdog(runCtx, func() bool { return true })

	if err := d.Run(runCtx); err != nil {
		return cli.Exit(fmt.Sprintf("paas-runner run: %v", err), 1)
	}
	return nil
}

// handleSignals implements the daemon's signal semantics until ctx ends
// for a reason other than the first stop signal.
func handleSignals(ctx context.Context, c *cli.Context, path string, d *dispatcher.Dispatcher, reg prometheus.Gatherer,
	sigs <-chan os.Signal, stop context.CancelFunc, force chan struct{}, notifier systemdNotifier,
) {
	stopping := false
	for {
		var sig os.Signal
		if stopping {
			select {
			case sig = <-sigs:
			case <-d.Stopped():
				return
			}
		} else {
			select {
			case sig = <-sigs:
			case <-ctx.Done():
				stopping = true
				continue
			}
		}
		switch sig {
		case syscall.SIGINT, syscall.SIGTERM:
			if !stopping {
				stopping = true
				log.WithField("signal", sig.String()).Warn("caught signal: graceful shutdown (send it again to force an immediate flushed exit)")
				notifier.stopping()
				stop()
				continue
			}
			log.WithField("signal", sig.String()).Warn("caught second signal: forcing exit")
			close(force)
			return
		case syscall.SIGHUP:
			reload(c, path, d, notifier)
		case syscall.SIGUSR1:
			dump(d, reg)
		}
	}
}

// reload re-reads CONFIG (SIGHUP); a configuration with problems is logged
// and ignored.
func reload(c *cli.Context, path string, d *dispatcher.Dispatcher, notifier systemdNotifier) {
	notifier.reloading()
	defer notifier.ready()
	cfg, err := config.LoadAndValidate(path)
	if err != nil {
		log.WithError(err).Error("reload: configuration rejected; keeping the current one")
		return
	}
	if err := configureLogging(c, cfg.LogLevel, cfg.LogFormat); err != nil {
		log.WithError(err).Error("reload: logging settings rejected")
	}
	d.Reload(cfg)
	log.Info("reload: configuration applied")
}

// dump logs the dispatcher's snapshot and the counters (SIGUSR1). The
// snapshot holds no token by construction.
func dump(d *dispatcher.Dispatcher, reg prometheus.Gatherer) {
	text, err := dumpText(d, reg)
	if err != nil {
		log.WithError(err).Error("dump: encode snapshot")
		return
	}
	log.Warn("dump of tracked jobs and counters: " + text)
}
