"""Speed and pitch for synthesised speech, each without changing the other.

librosa's phase vocoder does the work: `time_stretch` changes the tempo and keeps the pitch,
`pitch_shift` (a stretch, then a resample back) moves the pitch and keeps the duration. It
costs a few milliseconds per second of speech on one core. Each sentence is processed on its
own (playback streams sentence by sentence), so both ends of a processed chunk are faded over
a few milliseconds: the vocoder's first and last frames would otherwise start or stop on a
non-zero sample and click at the chunk boundary.
"""
from __future__ import annotations

import numpy as np

SPEED_RANGE = (0.5, 2.0)          # times the engine's natural rate
PITCH_RANGE = (-6.0, 6.0)         # semitones; further than this the vocoder sounds synthetic
EDGE_FADE_S = 0.008
WINDOW_S = 0.046                  # ~1024 samples at 22-24 kHz: short enough not to smear consonants


def check_range(field: str, value: float, bounds: tuple[float, float]) -> float:
    """`value` if within `bounds`, else ValueError naming the field and the range."""
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{field} = {value:g} is out of range ({low:g} to {high:g})")
    return float(value)


def fade_edges(audio: np.ndarray, rate: int, seconds: float = EDGE_FADE_S) -> np.ndarray:
    """Raised-cosine fade-in and fade-out, so a chunk starts and ends at zero."""
    n = min(int(rate * seconds), len(audio) // 2)
    if n < 2:
        return audio
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
    out = audio.copy()
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def apply(audio: np.ndarray, rate: int, speed: float = 1.0, pitch: float = 0.0) -> np.ndarray:
    """`audio` played `speed` times as fast and `pitch` semitones higher (float32 mono)."""
    if speed == 1.0 and pitch == 0.0 or len(audio) < 2048:
        return audio
    import librosa   # lazy: a second's import, only for voices that need it

    out = np.asarray(audio, dtype=np.float32)
    n_fft = 1 << max(8, round(np.log2(rate * WINDOW_S)))
    if pitch != 0.0:
        out = librosa.effects.pitch_shift(out, sr=rate, n_steps=float(pitch), n_fft=n_fft)
    if speed != 1.0:
        out = librosa.effects.time_stretch(out, rate=float(speed), n_fft=n_fft)
    return fade_edges(np.clip(out, -1.0, 1.0).astype(np.float32), rate)
