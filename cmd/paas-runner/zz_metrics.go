package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
	"gitlab.com/paas-runner/paas-runner/dispatcher"
	"gitlab.com/paas-runner/paas-runner/metrics"
)

// metricsShutdownTimeout bounds the metrics server's graceful shutdown.
const metricsShutdownTimeout = 5 * time.Second

// newDaemonMetrics builds the daemon's registry (Go and process collectors
// included) and its metrics; the dispatcher's snapshot is plugged in with
// SetSnapshot once the dispatcher exists.
func newDaemonMetrics() (*prometheus.Registry, *metrics.Metrics, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, fmt.Errorf("register process collector: %w", err)
	}
	m, err := metrics.New(reg, nil)
	if err != nil {
		return nil, nil, err
	}
	return reg, m, nil
}

// startMetricsServer starts the HTTP server on listen_address (nothing
// when unset) and returns the function stopping it.
func startMetricsServer(ctx context.Context, cfg *config.Config, reg *prometheus.Registry, d *dispatcher.Dispatcher, l logrus.FieldLogger) (func(), error) {
	if cfg.ListenAddress == "" {
		return func() {}, nil
	}
	urls := map[string]string{}
	for i := range cfg.Runners {
		urls[cfg.Runners[i].Label()] = cfg.Runners[i].URL
	}
	srv := metrics.NewServer(cfg.ListenAddress, reg, d, metrics.ReadyWhenClosed(d.Ready()),
		l.WithField("component", "metrics"), metrics.WithCoordinatorURLs(urls))
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), metricsShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			l.WithError(err).Warn("metrics server shutdown")
		}
	}, nil
}

// dumpReport is what SIGUSR1 logs: the dispatcher's snapshot (no token by
// construction) and the paas_runner counters.
type dumpReport struct {
	Snapshot dispatcher.Snapshot `json:"snapshot"`
	Counters map[string]float64  `json:"counters,omitempty"`
}

// dumpText renders the SIGUSR1 dump; g may be nil.
func dumpText(d interface{ Snapshot() dispatcher.Snapshot }, g prometheus.Gatherer) (string, error) {
	rep := dumpReport{Snapshot: metrics.RedactSnapshot(d.Snapshot())}
	if g != nil {
		c, err := metrics.Counters(g)
		if err != nil {
			return "", err
		}
		rep.Counters = c
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return "", fmt.Errorf("encode dump: %w", err)
	}
	return string(b), nil
}
