"""A tiny thread-safe fan-out of daemon events (state changes, turns, errors).

Publishers never block: each subscriber is a callable that must hand the event off
quickly (the web layer pushes it onto an asyncio queue with call_soon_threadsafe).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)
Event = dict[str, Any]


class EventHub:
    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)
        return unsubscribe

    def publish(self, kind: str, **data: Any) -> None:
        event = {"type": kind, "time": time.time(), **data}
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - one broken subscriber must not stop the others
                log.exception("event subscriber failed")
