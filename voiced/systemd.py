"""systemd glue: sd_notify messages and a watchdog that tracks real progress.

`Notifier` sends READY/STATUS/RELOADING/STOPPING/WATCHDOG to $NOTIFY_SOCKET through
systemd-python (libsystemd's sd_notify, a hard dependency: one path, no hand-written
datagram). Without $NOTIFY_SOCKET (not started by systemd, or Type= is not notify) every
call is a no-op.

`Watchdog` pings only while the daemon says it is alive (core/health.py: its core keeps
stepping and no slow stage is stuck), so systemd restarts a hung voiced instead of keeping
it alive forever with a timer that pings regardless. A lost microphone is not "hung".
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from systemd import daemon as _sd_daemon

log = logging.getLogger(__name__)


class Notifier:
    """sd_notify(3) for voiced. Thread-safe; never raises on a send failure."""

    def __init__(self):
        # libsystemd reads $NOTIFY_SOCKET (a path, or "@name" for an abstract socket) from
        # the process environment at each send; we read it once to know whether to send.
        self.socket_path: str | None = os.environ.get("NOTIFY_SOCKET") or None
        self._lock = threading.Lock()
        self._last_status: str | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    @property
    def backend(self) -> str:
        if not self.enabled:
            return "none"
        return "systemd-python"

    # -- the messages ---------------------------------------------------------
    def send(self, *fields: str) -> bool:
        """Send KEY=VALUE fields as one datagram; True if it was sent."""
        if not self.enabled or not fields:
            return False
        message = "\n".join(fields)
        with self._lock:
            try:
                return bool(_sd_daemon.notify(message))
            except OSError as exc:
                if not self._warned:  # once: a vanished socket would otherwise flood the log
                    log.warning("sd_notify to %s failed: %s", self.socket_path, exc)
                    self._warned = True
                return False

    def ready(self, status: str = "") -> bool:
        """Startup (or a reload) finished; systemd's watchdog starts counting now."""
        fields = ["READY=1"]
        if status:
            fields.append(f"STATUS={status}")
            with self._lock:
                self._last_status = status
        return self.send(*fields)

    def status(self, text: str) -> bool:
        """Free-form status for `systemctl status`; sent only when it changed."""
        with self._lock:
            if text == self._last_status:
                return False
            self._last_status = text
        return self.send(f"STATUS={text}")

    def reloading(self) -> bool:
        """Reload begins (send ready() when done). systemd >= 253 wants the monotonic
        timestamp of the reload request to match it with the next READY=1."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        """One keep-alive ping. Call it through `Watchdog`, which checks liveness first."""
        return self.send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WatchdogSec=), or None if there is no watchdog
        for this process (unset, bad value, or WATCHDOG_PID names another process)."""
        if not self.enabled:
            return None
        try:
            usec = int(os.environ.get("WATCHDOG_USEC", ""))
            pid = os.environ.get("WATCHDOG_PID")
            if pid and int(pid) != os.getpid():
                return None
        except ValueError:
            return None
        return usec / 2e6 if usec > 0 else None


class Watchdog(threading.Thread):
    """Sends WATCHDOG=1 every `interval` seconds while `is_alive()` says (True, reason).

    When it turns (False, reason) the reason is logged once and pings stop, so systemd
    kills and restarts voiced after WatchdogSec=; if it recovers first, pings resume.
    A no-op thread when interval is None or the notifier is disabled.
    """

    def __init__(self, notifier: Notifier, is_alive: Callable[[], tuple[bool, str]],
                 interval: float | None):
        super().__init__(name="sd-watchdog", daemon=True)
        self.notifier = notifier
        self.interval = interval
        self._check = is_alive  # not "is_alive": that is Thread's own method
        self._halt = threading.Event()
        self.healthy = True
        self.reason = ""
        self.pings = 0

    @property
    def active(self) -> bool:
        return self.notifier.enabled and self.interval is not None and self.interval > 0

    def run(self) -> None:
        if not self.active:
            return
        next_at = time.monotonic()
        while not self._halt.is_set():
            self.tick()
            # A fixed schedule, not sleep(interval) after the work: no drift.
            next_at += self.interval
            if self._halt.wait(max(0.0, next_at - time.monotonic())):
                break

    def tick(self) -> bool:
        """One check (and ping if alive); returns whether it pinged."""
        try:
            alive, reason = self._check()
        except Exception as exc:  # noqa: BLE001 - a broken check must look like a hang
            alive, reason = False, f"liveness check failed: {exc!r}"
        self.reason = reason
        if not alive:
            if self.healthy:
                log.error("watchdog: not alive (%s); no longer pinging systemd", reason)
            self.healthy = False
            return False
        if not self.healthy:
            log.warning("watchdog: alive again (%s); pinging systemd", reason)
        self.healthy = True
        if self.notifier.watchdog():
            self.pings += 1
            return True
        return False

    def stop(self, timeout: float = 2.0) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
