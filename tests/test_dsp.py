"""DSP helpers: resampling (whole and streamed), down-mixing, levels, quality checks."""
from __future__ import annotations

import numpy as np
import pytest

from voiced.audio import dsp


def tone(freq, rate, seconds=1.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * rate / len(x)


@pytest.mark.parametrize("src, dst", [(48000, 16000), (44100, 16000), (22050, 24000), (16000, 24000), (8000, 16000)])
def test_resample_keeps_pitch_and_length(src, dst):
    out = dsp.resample(tone(440, src), src, dst)
    assert abs(len(out) - dst) <= 1
    assert abs(dominant_freq(out, dst) - 440) < 3


@pytest.mark.parametrize("src, dst, chunk", [(48000, 16000, 960), (44100, 16000, 1000), (22050, 24000, 333),
                                             (24000, 48000, 1200), (16000, 44100, 320)])
def test_stream_resampler_and_resample_match_the_exact_signal(src, dst, chunk):
    """Streamed (PyAV) and whole (soxr) against the same tones computed at the output rate:
    aligned (no delay), the same length, errors far below a 16-bit step (3e-5)."""
    x = tone(440, src, 2.0) + tone(3000, src, 2.0, 0.2)
    exact = tone(440, dst, 2.0) + tone(3000, dst, 2.0, 0.2)
    r = dsp.StreamResampler(src, dst)
    out = np.concatenate([r.process(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()])
    whole = dsp.resample(x, src, dst)
    assert len(out) == len(whole) == len(exact) and out.dtype == whole.dtype == np.float32
    inner = slice(dst // 10, -dst // 10)   # the edges ring: the signal starts and ends abruptly
    np.testing.assert_allclose(out[inner], exact[inner], atol=3e-5)
    np.testing.assert_allclose(whole[inner], exact[inner], atol=3e-6)


def test_stream_resampler_holds_back_little_and_passes_same_rate_through():
    r = dsp.StreamResampler(48000, 16000)
    got = sum(len(r.process(np.zeros(3840, dtype=np.float32))) for _ in range(10))
    assert 12800 - got <= 32   # at most 2 ms of 16 kHz audio inside the filter (soxr's stream: 12-38 ms)
    same = np.ones(100, dtype=np.float32)
    assert dsp.StreamResampler(16000, 16000).process(same) is same


def test_downmix_averages_channels():
    left, right = tone(440, 16000), tone(880, 16000)
    inter = np.stack([left, right], axis=1).reshape(-1)
    mono = dsp.downmix(inter, 2)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-6)
    assert dsp.downmix(left, 1) is left


def test_int16_roundtrip():
    x = tone(440, 16000)
    back = dsp.int16_to_float(dsp.float_to_int16(x))
    assert np.max(np.abs(back - x)) < 1e-4
    assert dsp.float_to_int16(np.array([2.0, -2.0])).tolist() == [32767, -32767]


def test_dc_blocker_removes_offset_across_chunks():
    x = tone(300, 16000, 2.0, 0.3) + 0.2
    blocker = dsp.DcBlocker(16000)
    out = np.concatenate([blocker.process(x[i:i + 1280]) for i in range(0, len(x), 1280)])
    assert abs(float(np.mean(out[16000:]))) < 0.005
    assert abs(dsp.rms_dbfs(out[16000:]) - dsp.rms_dbfs(tone(300, 16000, 1.0, 0.3))) < 0.5


@pytest.mark.parametrize("amp", [0.01, 0.1, 0.9])
def test_normalize_reaches_target_without_clipping(amp):
    x = tone(440, 16000, 1.0, amp)
    out = dsp.normalize(x, -20.0)
    assert abs(dsp.active_rms_dbfs(out) - (-20.0)) < 0.5
    assert np.max(np.abs(out)) <= 0.99


def test_normalize_caps_gain_on_near_silence():
    x = tone(440, 16000, 1.0, 1e-5)
    out = dsp.normalize(x, -20.0, max_gain_db=30)
    assert dsp.rms_dbfs(out) < -60


def test_quality_check_drops_empty_and_clipped():
    rng = np.random.default_rng(0)
    speechy = tone(200, 16000, 1.0, 0.3)
    assert dsp.check_quality(speechy, -55, 0.05).ok
    empty = dsp.check_quality(rng.normal(0, 1e-4, 16000).astype(np.float32), -55, 0.05)
    assert not empty.ok and "empty" in empty.reason
    clipped = dsp.check_quality(np.clip(tone(200, 16000, 1.0, 3.0), -1, 1), -55, 0.05)
    assert not clipped.ok and "clipped" in clipped.reason
    short = dsp.check_quality(speechy[:800], -55, 0.05)
    assert not short.ok and "short" in short.reason


def test_noise_suppression_lowers_steady_noise_keeps_tone():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.02, 32000).astype(np.float32)
    signal = np.concatenate([np.zeros(16000, np.float32), tone(500, 16000, 1.0, 0.3)])
    out = dsp.suppress_noise(signal + noise)
    assert dsp.rms_dbfs(out[2000:14000]) < dsp.rms_dbfs(noise[2000:14000]) - 6   # noise-only part
    assert abs(dsp.rms_dbfs(out[18000:30000]) - dsp.rms_dbfs(signal[18000:30000])) < 1.5
