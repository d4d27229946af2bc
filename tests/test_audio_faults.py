"""Capture survives audio faults on a real PulseAudio server: the server dying and coming
back, a suspended (stalled) source, and starting before the server exists."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from support.pulse import PulseHarness
from voiced.audio.capture import Capture
from voiced.config import AudioSettings

JFK = Path(__file__).parent / "data" / "jfk_16k.flac"
FAST = AudioSettings(reopen_backoff_s=0.2, reopen_backoff_max_s=2.0, read_timeout_s=1.5)


@pytest.fixture()
def server(monkeypatch):
    harness = PulseHarness()
    harness.apply(monkeypatch)
    yield harness
    harness.stop()


def wait_until(cond, timeout: float, step: float = 0.05) -> float:
    """Seconds until cond() held; fails the test after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    pytest.fail(f"condition not met within {timeout} s")


def hears_jfk(capture: Capture, harness: PulseHarness, seconds: float = 4.0) -> float:
    """Play real speech into the mic; return the normalised correlation with what was captured."""
    while capture.read(0.01) is not None:
        pass
    ref, _ = sf.read(JFK, dtype="float32")
    player = harness.play_into_mic(JFK)
    got, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        frame = capture.read(0.2)
        if frame is not None:
            got.append(frame)
    player.terminate()
    audio = np.concatenate(got).astype(np.float32) / 32768 if got else np.zeros(1, np.float32)
    seg = ref[16000:32000]   # 1 s of speech from the start of the recording
    if len(audio) < len(seg):
        return 0.0
    corr = np.correlate(audio, seg, "valid")
    return float(corr.max() / np.dot(seg, seg))


def test_capture_is_bit_exact(server):
    server.start()
    cap = Capture(FAST)
    cap.start()
    try:
        assert cap.wait_open(5)
        assert hears_jfk(cap, server) == pytest.approx(1.0, abs=1e-3)
    finally:
        cap.stop()


def test_audio_server_restart_is_survived(server):
    server.start()
    cap = Capture(FAST)
    cap.start()
    try:
        assert cap.wait_open(5)
        server.kill()
        lost_after = wait_until(lambda: not cap.health().ok, 10)
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(3.0)                                   # outage: back-off, not a busy loop
        cpu_share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        server.start()
        back_after = wait_until(lambda: cap.health().ok, 15)
        print(f"loss noticed in {lost_after:.2f} s; back {back_after:.2f} s after the server; "
              f"CPU while down {cpu_share:.1%} of a core; reopen attempts {cap.health().reopen_count}")
        assert cpu_share < 0.10
        assert hears_jfk(cap, server) == pytest.approx(1.0, abs=1e-3)
    finally:
        cap.stop()


def test_suspended_source_is_detected_and_recovered(server):
    server.start()
    cap = Capture(FAST)
    cap.start()
    try:
        assert cap.wait_open(5)
        server.pactl("suspend-source", "mic", "1")
        stalled_after = wait_until(lambda: "stalled" in cap.health().detail or not cap.health().ok, 10)
        server.pactl("suspend-source", "mic", "0")
        back_after = wait_until(lambda: cap.health().ok and cap.health().last_frame_age_s < 0.5, 15)
        print(f"stall detected after {stalled_after:.2f} s; flowing again {back_after:.2f} s after resume")
        assert hears_jfk(cap, server) == pytest.approx(1.0, abs=1e-3)
    finally:
        cap.stop()


def test_capture_started_before_the_server(server):
    cap = Capture(FAST)
    cap.start()
    try:
        assert not cap.wait_open(1.0)
        assert not cap.health().ok and cap.health().detail
        server.start()
        up_after = wait_until(lambda: cap.health().ok, 15)
        print(f"microphone picked up {up_after:.2f} s after the server appeared")
        assert hears_jfk(cap, server) == pytest.approx(1.0, abs=1e-3)
    finally:
        cap.stop()
