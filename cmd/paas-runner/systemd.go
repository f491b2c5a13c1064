package main

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// systemdNotifier speaks the sd_notify protocol when the daemon runs under a
// Type=notify unit (NOTIFY_SOCKET set); otherwise every call is a no-op.
type systemdNotifier struct {
	log logrus.FieldLogger
}

// ready reports that state is restored and polling started.
func (n systemdNotifier) ready() { n.notify(daemon.SdNotifyReady) }

// stopping reports the start of a graceful shutdown.
func (n systemdNotifier) stopping() { n.notify(daemon.SdNotifyStopping) }

// reloading reports a SIGHUP reload; call ready when it is done.
func (n systemdNotifier) reloading() {
	n.notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// status sets the one-line status shown by systemctl status.
func (n systemdNotifier) status(s string) { n.notify("STATUS=" + s) }

func (n systemdNotifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.WithError(err).Warn("systemd notification failed")
	}
}

// watchdog pings systemd at half the WatchdogSec period while alive() holds,
// until ctx ends. Without WatchdogSec it returns at once.
func (n systemdNotifier) watchdog(ctx context.Context, alive func() bool) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				n.notify(daemon.SdNotifyWatchdog)
			}
		}
	}
}
