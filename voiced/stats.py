"""Per-stage latency figures over the recent turns (median, p95) and counters.

Written by the observers' thread (turns) and the owner (counters), read by the web thread:
every access goes through the lock, and readers get copies.
"""
from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

from .pipeline import Turn


class TurnStats:
    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self._durations: dict[str, deque[float]] = {}
        self._window = window
        self._counts: Counter[str] = Counter()

    def add(self, turn: Turn) -> None:
        outcome = turn.outcome.split(":")[0]
        with self._lock:
            self._counts["turns"] += 1
            self._counts[f"outcome_{outcome.replace(' ', '_')}"] += 1
            if outcome == "error":
                self._counts["errors"] += 1
            if outcome == "no speech" and turn.trigger.startswith("wake:"):
                self._counts["false_wakes"] += 1   # woke, but nobody spoke: tune [wake] threshold
            for stage, seconds in turn.durations().items():
                self._durations.setdefault(stage, deque(maxlen=self._window)).append(seconds)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    @property
    def counts(self) -> dict[str, int]:
        """A copy, taken under the lock (status, tests)."""
        with self._lock:
            return dict(self._counts)

    def latency(self) -> dict[str, dict[str, float]]:
        with self._lock:
            values_by_stage = {stage: list(values) for stage, values in self._durations.items()}
        out = {}
        for stage, values in values_by_stage.items():
            arr = np.asarray(values)
            out[stage] = {"median_s": round(float(np.median(arr)), 3),
                          "p95_s": round(float(np.percentile(arr, 95)), 3), "n": int(arr.size)}
        return out
