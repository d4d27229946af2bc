"""Shared audio fixtures: real espeak-ng speech at 16 kHz, noise, framing, and the real
openWakeWord/Silero model folder (fetched like CI does; a failure to fetch FAILS the test)."""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter, resample_poly

# Framing and speech bounds are the benchmark's own helpers: one definition for both.
from voiced.bench.common import FRAME, RATE, frames, speech_bounds  # noqa: E402,F401


@functools.lru_cache(maxsize=64)
def _espeak_cached(text: str, voice: str, speed: int | None) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng): the audio tests need real speech")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", voice, "-w", str(wav)] + (["-s", str(speed)] if speed else []) + [text]
        subprocess.run(cmd, check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    g = gcd(rate, RATE)
    audio = resample_poly(audio, RATE // g, rate // g)
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def espeak(text: str, voice: str = "en-us", speed: int | None = None) -> np.ndarray:
    """espeak-ng speech as 16 kHz mono int16 (espeak writes 22.05 kHz)."""
    return _espeak_cached(text, voice, speed).copy()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def _scale(noise: np.ndarray, dbfs: float) -> np.ndarray:
    noise = noise / np.sqrt(np.mean(noise ** 2)) * 32768 * 10 ** (dbfs / 20)
    return np.clip(np.round(noise), -32768, 32767).astype(np.int16)


def white_noise(seconds: float, dbfs: float = -30.0, seed: int = 0) -> np.ndarray:
    return _scale(np.random.default_rng(seed).normal(size=round(seconds * RATE)), dbfs)


def pink_noise(seconds: float, dbfs: float = -30.0, seed: int = 0) -> np.ndarray:
    """1/f noise (Kellet's filter on white noise), like room/fan noise more than white is."""
    n = round(seconds * RATE)
    white = np.random.default_rng(seed).normal(size=n + RATE)
    pink = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400], white)[RATE:]   # drop the filter's settling
    return _scale(pink, dbfs)


def concat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=np.int16) for p in parts])


@pytest.fixture(scope="session")
def oww_dir() -> Path:
    """The real openWakeWord + Silero ONNX folder, prepared by the project's own fetch."""
    from voiced.config import Settings
    from voiced.models import openwakeword_assets as assets

    settings = Settings()
    messages: list[str] = []
    result = assets.fetch(settings, messages.append)
    if not result.ready:
        pytest.fail("openWakeWord/Silero models could not be fetched (CI setup must run "
                    f"`voiced models fetch`): {result.detail}\n" + "\n".join(messages))
    return assets.assets_dir(settings)


@pytest.fixture(scope="session")
def smart_turn_model() -> Path:
    """The Smart Turn v3.2 model, prepared by the project's own fetch (CI runs `voiced models fetch`)."""
    from voiced.config import Settings
    from voiced.models import smart_turn_assets as assets

    settings = Settings()
    messages: list[str] = []
    result = assets.fetch(settings, messages.append)
    path = assets.smart_turn_path(settings)
    if not result.ready or path is None:
        pytest.fail(f"Smart Turn model could not be fetched: {result.detail}\n" + "\n".join(messages))
    return path


def silero_segments(audio: np.ndarray, vad_path: Path, bridge_s: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of speech (int16 at 16 kHz) by Silero VAD, gaps under bridge_s bridged."""
    from voiced.vad import SileroVad

    vad = SileroVad(vad_path)
    win = SileroVad.WINDOW
    speech = [vad.probability(audio[i:i + win]) > 0.5 for i in range(0, len(audio) - win + 1, win)]
    segments: list[list[float]] = []
    for i, is_speech in enumerate(speech):
        if not is_speech:
            continue
        start, end = i * win / RATE, (i + 1) * win / RATE
        if segments and start - segments[-1][1] < bridge_s:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return [(s, e) for s, e in segments]
