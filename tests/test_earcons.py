"""Earcons: short, audible, click-free, and the listening chime rises while the failure tone falls."""
from __future__ import annotations

import numpy as np
import pytest

from voiced.audio.earcons import FAILED_NOTES, LISTENING_NOTES, RATE, Earcons
from voiced.config import EarconSettings
from voiced.engines.base import SpeechChunk


def dominant_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n=1 << 15))
    return float(np.argmax(spectrum) * rate / (1 << 15))


@pytest.fixture(scope="module")
def cues():
    e = Earcons(EarconSettings())
    return {"listening": e.listening(), "failed": e.failed()}


@pytest.mark.parametrize("name, max_s", [("listening", 0.16), ("failed", 0.35)])
def test_short_audible_float32_at_24k(cues, name, max_s):
    chunk = cues[name]
    assert isinstance(chunk, SpeechChunk) and chunk.sample_rate == RATE == 24_000
    assert chunk.audio.dtype == np.float32 and chunk.audio.ndim == 1
    assert 0.1 <= len(chunk.audio) / RATE <= max_s
    assert np.max(np.abs(chunk.audio)) == pytest.approx(0.5, abs=1e-3)   # default volume
    assert np.sqrt(np.mean(chunk.audio ** 2)) > 0.1


@pytest.mark.parametrize("name, notes", [("listening", LISTENING_NOTES), ("failed", FAILED_NOTES)])
def test_no_clicks_at_the_ends_or_between_notes(cues, name, notes):
    audio = cues[name].audio
    ms = RATE // 1000
    assert abs(audio[0]) < 1e-6 and abs(audio[-1]) < 1e-6
    assert np.max(np.abs(audio[:ms])) < 0.05 and np.max(np.abs(audio[-ms:])) < 0.05
    boundary = int(round(notes[0][1] * RATE))
    assert np.max(np.abs(audio[boundary - 2:boundary + 2])) < 0.01
    # Nothing jumps faster than the highest note itself can move.
    top = max(f for f, _ in notes)
    assert np.max(np.abs(np.diff(audio))) < 0.5 * 2 * np.pi * 2 * top / RATE


def test_listening_rises_and_failed_falls(cues):
    for name, rising in (("listening", True), ("failed", False)):
        audio = cues[name].audio
        half = len(audio) // 2
        first, second = dominant_hz(audio[:half], RATE), dominant_hz(audio[half:], RATE)
        assert (second > first * 1.2) if rising else (second < first / 1.2), (name, first, second)
    assert dominant_hz(cues["listening"].audio, RATE) > dominant_hz(cues["failed"].audio, RATE)


def test_settings_volume_and_off():
    quiet = Earcons(EarconSettings(volume=0.2))
    assert np.max(np.abs(quiet.listening().audio)) == pytest.approx(0.2, abs=1e-3)
    assert quiet.failed() is quiet.failed()   # generated once
    off = Earcons(EarconSettings(enabled=False))
    assert off.listening() is None and off.failed() is None
    assert Earcons(EarconSettings(volume=0.0)).listening() is None
