"""The status page's live microphone level and wake word scores, only while a page watches.

`Meter.wanted` counts the open meter streams (GET /api/meter). The listener feeds a frame
only `if daemon.meter.wanted`, so with no page open the owner's thread pays one attribute
read per frame and nothing else. While a page watches, the owner computes the level (RMS,
dBFS) of at most one frame per `LEVEL_EVERY_S` and keeps the highest level and wake scores
since the last reading; each stream reads (and resets) them about `PERIOD_S` apart. The wake
scores are the ones the detector computed anyway: no extra model runs.
"""
from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import numpy as np

LEVEL_EVERY_S = 0.1   # the owner computes a level at most this often
PERIOD_S = 0.2        # a stream sends a reading this often (5 Hz)
FLOOR_DB = -96.0      # digital silence (16-bit)
FULL_SCALE_SQ = 32768.0 ** 2


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level of 16-bit samples (or floats in [-1, 1]) in dB relative to full scale."""
    x = np.asarray(pcm).reshape(-1)
    if not len(x):
        return FLOOR_DB
    if np.issubdtype(x.dtype, np.floating):
        mean_sq = float(np.dot(x, x)) / len(x)
    else:
        f = x.astype(np.float32)
        mean_sq = float(np.dot(f, f)) / len(x) / FULL_SCALE_SQ
    return FLOOR_DB if mean_sq <= 0 else max(FLOOR_DB, 10.0 * math.log10(mean_sq))


def wake_scores(detector) -> dict[str, float] | None:
    """The last frame's scores of a local openWakeWord detector (or of a remote detector's
    local fallback while it scores); None when a remote service scores (it sends no scores)."""
    scores = getattr(detector, "scores", None)
    if scores is None and getattr(detector, "_using", None) == "local":
        scores = getattr(getattr(detector, "local", None), "scores", None)
    return scores


class Meter:
    def __init__(self):
        self.wanted = 0                 # open meter streams; the listener feeds frames only while > 0
        self._lock = threading.Lock()
        self._next_level = 0.0
        self._level: float | None = None          # highest level since the last reading
        self._scores: dict[str, float] = {}       # highest score per wake word since the last reading
        self._last_frame = 0.0

    # -- the owner's thread (only while wanted) ---------------------------------------
    def frame(self, pcm: np.ndarray, detector=None) -> None:
        """One microphone frame; `detector`: the wake detector that has just scored it."""
        now = time.monotonic()
        self._last_frame = now
        scores = wake_scores(detector) if detector is not None else None
        level = None
        if now >= self._next_level:
            self._next_level = now + LEVEL_EVERY_S
            level = rms_dbfs(pcm)
        if not scores and level is None:
            return
        with self._lock:
            if level is not None and (self._level is None or level > self._level):
                self._level = level
            if scores:
                for name, score in scores.items():
                    if score > self._scores.get(name, -1.0):
                        self._scores[name] = score

    # -- the streams ---------------------------------------------------------------------
    def watch(self) -> None:
        with self._lock:
            self.wanted += 1

    def unwatch(self) -> None:
        with self._lock:
            self.wanted = max(0, self.wanted - 1)
            if not self.wanted:
                self._level, self._scores = None, {}

    def take(self) -> tuple[float | None, dict[str, float], float]:
        """(highest level since the last call or None, highest wake scores, seconds since the
        last frame fed); resets the first two."""
        with self._lock:
            level, scores = self._level, self._scores
            self._level, self._scores = None, {}
        age = time.monotonic() - self._last_frame if self._last_frame else None
        return level, scores, age

    def reading(self, daemon) -> dict:
        level, scores, age = self.take()
        snap = daemon.snapshot()
        wake = daemon.settings.wake
        local = wake_scores(daemon.wake) is not None if daemon.wake is not None else False
        return {"time": time.time(), "state": snap.state.value,
                "level_db": None if level is None else round(level, 1),
                "frame_age_s": None if age is None else round(age, 2),
                "mic": {"ok": snap.mic.ok, "detail": snap.mic.detail},
                "threshold": wake.threshold, "wake_words": list(wake.models),
                "scored": "local" if local else "remote",
                "scores": {name: round(score, 3) for name, score in scores.items()}}


async def stream(daemon, closed: threading.Event, period: float = PERIOD_S):
    """Server-Sent Events: one reading per `period` while the client stays. The meter is fed
    exactly as long as this generator lives (a client that goes away ends it)."""
    meter = daemon.meter
    meter.watch()
    try:
        yield "retry: 2000\n\n"
        while not closed.is_set():
            yield f"data: {json.dumps(meter.reading(daemon))}\n\n"
            await asyncio.sleep(period)
    finally:
        meter.unwatch()
