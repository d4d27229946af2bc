"""Per-stage latency figures over the recent turns (median, p95) and counters."""
from __future__ import annotations

from collections import Counter, deque

import numpy as np

from .pipeline import Turn


class TurnStats:
    def __init__(self, window: int = 200):
        self._durations: dict[str, deque[float]] = {}
        self._window = window
        self.counts: Counter[str] = Counter()

    def add(self, turn: Turn) -> None:
        self.counts["turns"] += 1
        outcome = turn.outcome.split(":")[0]
        self.counts[f"outcome_{outcome.replace(' ', '_')}"] += 1
        if outcome == "error":
            self.counts["errors"] += 1
        if outcome == "no speech" and turn.trigger.startswith("wake:"):
            self.counts["false_wakes"] += 1   # woke, but nobody spoke: tune [wake] threshold
        for stage, seconds in turn.durations().items():
            self._durations.setdefault(stage, deque(maxlen=self._window)).append(seconds)

    def latency(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in self._durations.items():
            arr = np.asarray(values)
            out[stage] = {"median_s": round(float(np.median(arr)), 3),
                          "p95_s": round(float(np.percentile(arr, 95)), 3), "n": int(arr.size)}
        return out
