"""Audio that Home Assistant names by URL (a TTS reply, an announcement, a chime): fetched and
decoded for the speaker. Bounded in size and time: a bad URL is an error, never a hang."""
from __future__ import annotations

import urllib.request

import numpy as np

from ..engines.base import EngineError

MAX_BYTES = 20 * 2**20
TIMEOUT_S = 15.0


def fetch_audio(url: str, rate: int) -> np.ndarray:
    """float32 mono at `rate`."""
    from ..audio.decode import decode_audio

    if not url.startswith(("http://", "https://")):
        raise EngineError(f"Home Assistant sent a media URL voiced cannot fetch: {url[:80]!r}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            data = response.read(MAX_BYTES + 1)
    except OSError as exc:
        raise EngineError(f"cannot fetch {url[:120]}: {exc}") from exc
    if len(data) > MAX_BYTES:
        raise EngineError(f"{url[:120]} is larger than {MAX_BYTES // 2**20} MB")
    try:
        return decode_audio(data, rate=rate, max_seconds=600)
    except Exception as exc:  # noqa: BLE001 - PyAV's many decode errors
        raise EngineError(f"cannot decode the audio of {url[:120]}: {exc}") from exc


def ring_tone(rate: int) -> np.ndarray:
    """One ring of a finished timer: three short high beeps, then a second of quiet."""
    t = np.arange(int(0.12 * rate)) / rate
    beep = 0.5 * np.sin(2 * np.pi * 1320 * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.01)
    gap = np.zeros(int(0.08 * rate))
    return np.concatenate([beep, gap, beep, gap, beep, np.zeros(rate)]).astype(np.float32)
