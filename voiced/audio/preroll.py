"""Ring buffer of the last few seconds of captured frames.

Words spoken right after the wake word (or with the hotkey press) arrive before the
endpointer starts; the pre-roll hands them over so the request is not clipped.
"""
from __future__ import annotations

from collections import deque

import numpy as np


class PreRoll:
    def __init__(self, seconds: float, sample_rate: int = 16_000):
        if seconds < 0:
            raise ValueError("pre-roll length must be >= 0")
        self.max_samples = round(seconds * sample_rate)
        self.sample_rate = sample_rate
        self._frames: deque[np.ndarray] = deque()
        self._samples = 0

    def append(self, frame: np.ndarray) -> None:
        if self.max_samples == 0:
            return
        frame = np.array(frame, dtype=np.int16).reshape(-1)   # a copy: capture may reuse its buffer
        self._frames.append(frame)
        self._samples += len(frame)
        # Drop whole frames while the rest still covers the window; audio() trims the last bit.
        while self._frames and self._samples - len(self._frames[0]) >= self.max_samples:
            self._samples -= len(self._frames.popleft())

    def audio(self) -> np.ndarray:
        """The last `seconds` of audio (less if not that much was seen yet), int16."""
        if not self._frames:
            return np.zeros(0, dtype=np.int16)
        joined = np.concatenate(self._frames)
        return joined[-self.max_samples:]

    def clear(self) -> None:
        self._frames.clear()
        self._samples = 0

    @property
    def duration_s(self) -> float:
        return min(self._samples, self.max_samples) / self.sample_rate

    def __len__(self) -> int:
        return min(self._samples, self.max_samples)
