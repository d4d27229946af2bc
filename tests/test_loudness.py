"""Replies are levelled to a loudness target (ITU-R BS.1770 integrated loudness, pyloudnorm):
the real Playback plays two replies of very different input levels on the private PulseAudio
server, the speaker's monitor is recorded, and each recording measures within 1 LU of the
target."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from voiced.audio import dsp
from voiced.audio.playback import Playback
from voiced.config import AudioSettings
from voiced.engines.base import SpeechChunk

DATA = Path(__file__).parent / "data"
REC_RATE = 48_000


def clip(name: str) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(DATA / name, dtype="float32")
    return (audio.mean(axis=1) if audio.ndim > 1 else audio), rate


def at_lufs(audio: np.ndarray, rate: int, lufs: float) -> np.ndarray:
    meter = pyloudnorm.Meter(rate)
    return (audio * 10 ** ((lufs - meter.integrated_loudness(audio.astype(np.float64))) / 20)).astype(np.float32)


def measured_lufs(recording: np.ndarray, rate: int) -> float:
    loud = np.nonzero(np.abs(recording) > 1e-4)[0]
    assert len(loud), "nothing was played"
    return pyloudnorm.Meter(rate).integrated_loudness(recording[loud[0]: loud[-1] + 1].astype(np.float64))


def play_and_record(pulse, tmp_path: Path, chunks: list[SpeechChunk]) -> np.ndarray:
    from support.pulse import load_raw

    playback = Playback(AudioSettings())
    path = tmp_path / f"rec-{time.monotonic_ns()}.raw"
    rec = pulse.record_speaker(path, REC_RATE)
    time.sleep(0.5)
    try:
        assert playback.play(chunks) > 0 and playback.ok, playback.detail
        time.sleep(0.5)
    finally:
        rec.terminate()
        rec.wait(5)
    return load_raw(path)


def test_replies_of_very_different_levels_play_at_the_target_loudness(pulse, tmp_path):
    target = Playback(AudioSettings()).target_lufs
    quiet, rate_q = clip("speech/librivox_ss01_0870.flac")
    loud, rate_l = clip("jfk_16k.flac")
    quiet = at_lufs(quiet, rate_q, -46.0)            # a whisper of a voice
    loud = loud * (0.98 / np.max(np.abs(loud)))      # peaks at full scale
    assert dsp.loudness_lufs(loud, rate_l) - dsp.loudness_lufs(quiet, rate_q) > 25
    results = {}
    for name, audio, rate in (("quiet", quiet, rate_q), ("loud", loud, rate_l)):
        results[name] = measured_lufs(play_and_record(pulse, tmp_path, [SpeechChunk(audio, rate)]), REC_RATE)
    assert all(abs(v - target) <= 1.0 for v in results.values()), (target, results)


def test_one_gain_per_reply_from_its_first_sentence(pulse, tmp_path):
    """A reply in sentences (a TTS stream at 22.05 kHz) gets the gain that brings its first
    sentence to the target, for all of it: no level jumps between sentences."""
    target = Playback(AudioSettings()).target_lufs
    audio, rate = clip("speech/librivox_ss01_0890.flac")
    audio = dsp.resample(at_lufs(audio, rate, -35.0), rate, 22_050)
    half = len(audio) // 2
    got = measured_lufs(play_and_record(pulse, tmp_path, [SpeechChunk(audio[:half], 22_050),
                                                          SpeechChunk(audio[half:], 22_050)]), REC_RATE)
    first_off = dsp.loudness_lufs(audio, 22_050) - dsp.loudness_lufs(audio[:half], 22_050)
    assert abs(got - (target + first_off)) <= 1.0, (target, first_off, got)


@pytest.mark.parametrize("seconds", [0.05, 0.2, 0.39, 2.0])
def test_loudness_of_short_sentences_and_the_gain_caps(seconds):
    rate = 24_000
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.01 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    lufs = dsp.loudness_lufs(tone, rate)
    # BS.1770's calibration: a full-scale 1 kHz sine reads -3.01 LUFS, so amplitude A: 20 log10(A) - 3.01
    assert abs(lufs - (20 * np.log10(0.01) - 3.01)) < 0.2, lufs
    out = dsp.normalize_loudness(tone, -21.0, rate)
    assert abs(dsp.loudness_lufs(out, rate) - -21.0) < 0.2
    assert dsp.loudness_gain(tone * 0.1, rate, -21.0) == pytest.approx(10 ** 1.5)   # -63 LUFS: +30 dB at most
    assert np.max(np.abs(dsp.normalize_loudness(tone * 80, 0.0, rate))) <= 0.99 + 1e-6   # never clips
    assert dsp.loudness_gain(np.zeros(rate, np.float32), rate, -21.0) == 1.0
