"""Observers off the owner's thread: sd_notify, the event hub (SSE, metrics), stats, turn logs.

The owner hands each notification over as a callable and goes on; this thread runs them in
order. A slow observer (a full socket, a blocked SSE client) can delay only other observers.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger(__name__)


class Observers:
    def __init__(self):
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="observers", daemon=True)
        self._thread.start()

    def notify(self, fn: Callable[[], None]) -> None:
        self._calls.put(fn)

    def close(self, timeout: float = 2.0) -> None:
        """Run what is queued, then end."""
        self._calls.put(None)
        self._thread.join(timeout)

    def flush(self, timeout: float = 2.0) -> None:
        done = threading.Event()
        self._calls.put(done.set)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            fn = self._calls.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:  # noqa: BLE001 - one broken observer must not stop the others
                log.exception("observer failed")
