"""Tells the wake word said by the user from the wake word said by voiced's own reply.

While voiced speaks, its microphone hears the reply (a speaker in the same room). To let the
user interrupt with the wake word (barge-in) without the reply waking the daemon when it
happens to say "Jarvis", the reply's own audio is scored by a second wake word detector as it
is written to the speaker. A detection on the microphone while a reply that scored wake-like
is playing, or within `window_s` after it ended, is the reply's echo, not the user.

Why not a time window around the reply's wake word: blocks are written to the audio server
ahead of the sound (its buffer), by an amount PortAudio does not report reliably through
ALSA's pulse plugin; seen here, the echo came back after the whole reply had been written.
Costs ~1 ms of CPU per 80 ms of reply.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..audio.dsp import StreamResampler
from .wakeword import FRAME_SAMPLES, SAMPLE_RATE


class EchoGuard:
    def __init__(self, detector, threshold: float, window_s: float):
        self.detector = detector          # a WakeWordDetector of its own (it keeps state)
        self.threshold = threshold
        self.window_s = window_s
        self.peak = 0.0                   # highest score of the current/last reply, for the logs
        self._hot = False                 # the reply now playing scored wake-like
        self._guard_until = -1e9          # after a hot reply ended: its echo may still come back
        self._lock = threading.Lock()     # the reply and an earcon may play from two threads
        self._resampler: StreamResampler | None = None
        self._pending = np.zeros(0, dtype=np.float32)

    # -- Playback's observer hooks --------------------------------------------
    def started(self) -> None:
        with self._lock:   # each reply is scored on its own: the last one's audio must not linger
            self._hot, self.peak = False, 0.0
            self.detector.reset()
            self._resampler, self._pending = None, np.zeros(0, dtype=np.float32)

    def ended(self) -> None:
        with self._lock:
            if self._hot:
                self._guard_until = time.monotonic() + self.window_s
            self._hot = False

    def audio(self, audio: np.ndarray, rate: int) -> None:
        """Audio as it goes to the speaker (float32 mono at `rate`)."""
        with self._lock:
            if self._resampler is None or self._resampler.src != rate:
                self._resampler = StreamResampler(rate, SAMPLE_RATE)
            self._pending = np.concatenate([self._pending, self._resampler.process(audio)])
            while len(self._pending) >= FRAME_SAMPLES:
                frame, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
                self.detector.process(frame)
                score = max(self.detector.scores.values(), default=0.0)
                self.peak = max(self.peak, score)
                self._hot = self._hot or score >= self.threshold

    def is_echo(self, now: float | None = None) -> bool:
        """True while a microphone detection may be the reply's own wake word coming back."""
        now = time.monotonic() if now is None else now
        return self._hot or now <= self._guard_until
