"""Earcons: short generated sounds that tell the user what the daemon is doing without words.

A rising two-note chime = "I'm listening"; a falling two-note tone = "gave up / failed".
Generated in code (no files to ship or lose). Each note is faded in and out over 5 ms so
no note starts or stops on a non-zero sample, which a speaker plays as a click.
"""
from __future__ import annotations

import numpy as np

from ..config import EarconSettings
from ..engines.base import SpeechChunk

RATE = 24_000
FADE_S = 0.005
# (frequency Hz, seconds) per note. A major sixth up (E5 -> C#6) reads as "ready"; a fifth down
# (G4 -> C4), longer and lower, as "done, nothing happened". Both well inside small speakers' range.
LISTENING_NOTES = ((659.3, 0.070), (1108.7, 0.080))
FAILED_NOTES = ((392.0, 0.110), (261.6, 0.170))


def _note(freq: float, seconds: float, rate: int) -> np.ndarray:
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    # A soft bell: the fundamental, a quiet octave, and a gentle decay.
    wave = np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(4 * np.pi * freq * t)
    wave *= np.exp(-t / (seconds * 1.5))
    fade = min(int(round(FADE_S * rate)), n // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))   # raised cosine: smooth at both ends
    wave[:fade] *= ramp
    wave[n - fade:] *= ramp[::-1]
    return wave


def render(notes: tuple[tuple[float, float], ...], volume: float = 1.0, rate: int = RATE) -> np.ndarray:
    """Notes back to back, peak = volume, float32 mono."""
    audio = np.concatenate([_note(f, s, rate) for f, s in notes])
    peak = float(np.max(np.abs(audio))) or 1.0
    return (audio * (volume / peak)).astype(np.float32)


class Earcons:
    """The daemon's cues as SpeechChunks (what Playback plays); None when earcons are off."""

    def __init__(self, settings: EarconSettings | None = None, rate: int = RATE):
        self.settings = settings or EarconSettings()
        self.rate = rate
        self._cache: dict[str, SpeechChunk] = {}

    def _chunk(self, name: str, notes) -> SpeechChunk | None:
        if not self.settings.enabled or self.settings.volume <= 0:
            return None
        if name not in self._cache:
            self._cache[name] = SpeechChunk(render(notes, self.settings.volume, self.rate), self.rate)
        return self._cache[name]

    def listening(self) -> SpeechChunk | None:
        return self._chunk("listening", LISTENING_NOTES)

    def failed(self) -> SpeechChunk | None:
        return self._chunk("failed", FAILED_NOTES)
