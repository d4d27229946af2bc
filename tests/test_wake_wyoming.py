"""The remote wake word's way back to its server (voiced/triggers/wake_wyoming.py), against a
real voiced Wyoming server on loopback whose wake word "model" is a stand-in (a loud frame is
the wake word), so no model weights and no audio devices: fast.

- Once a role on the remote (here the STT's probe) reaches the server again, the wake word
  stream reconnects at once, not at the end of its own back-off; it says so in the log and
  the next wake word is scored by the server (the status page says which detector scores).
- "Back" means the server answered with the wake word: an accepted connection alone (a hung
  server) or a server without the wake word is not back, and does not flap up and down.
"""
from __future__ import annotations

import logging
import re
import socket
import time
from dataclasses import dataclass

import numpy as np
import pytest
from support.wyoming_peer import free_port

FRAME = 1280
LOUD = np.full(FRAME, 20_000, np.int16)
QUIET = np.zeros(FRAME, np.int16)


@dataclass(frozen=True)
class Fired:
    model: str
    score: float
    audio_time_s: float = 0.0


class LoudFrameDetector:
    """The WakeWordDetector interface: fires once at the start of each loud stretch."""

    def __init__(self, name: str = "hey_jarvis", score: float = 0.9):
        self.name, self.score, self.loud, self.fired = name, score, False, 0

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def reset(self) -> None:
        self.loud = False

    def process(self, frame: np.ndarray):
        loud = bool(np.abs(np.asarray(frame, np.int32)).max() > 10_000)
        fire, self.loud = loud and not self.loud, loud
        if fire:
            self.fired += 1
            return Fired(self.name, self.score)
        return None


class FakeSTT:
    """Enough of an STT engine for the server's Describe (the STT probe asks it)."""
    from voiced.engines.base import EngineInfo
    info = EngineInfo("fake-whisper", "cpu", "fake-model")


def serve(port: int, wake_names=("hey_jarvis",)):
    from voiced.config import WyomingSettings
    from voiced.wyoming.server import WyomingServer, WyomingService

    detectors: list[LoudFrameDetector] = []

    def make():
        detectors.append(LoudFrameDetector(wake_names[0]))
        return detectors[-1]

    service = WyomingService(WyomingSettings(enabled=True), FakeSTT(), None, tuple(wake_names), make)
    return WyomingServer(service, "127.0.0.1", port).start(), detectors


def satellite(settings, port: int, **wyoming):
    uri = f"tcp://127.0.0.1:{port}"
    return settings.model_copy(update={
        "wake": settings.wake.model_copy(update={"engine": "wyoming", "wyoming_uri": uri, "models": ["hey_jarvis"]}),
        "stt": settings.stt.model_copy(update={"engine": "wyoming", "wyoming_uri": uri}),
        "wyoming": settings.wyoming.model_copy(update={"connect_timeout_s": 2.0, "read_timeout_s": 2.0, **wyoming})})


def wait_for(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def listen(detector, frames, timeout: float = 5.0):
    """Frames as the listen loop gives them (one each 20 ms here); then quiet ones until a
    detection comes back (a remote one arrives a frame or two later) or `timeout`."""
    end = time.monotonic() + timeout
    pending = list(frames)
    while time.monotonic() < end:
        found = detector.process(pending.pop(0) if pending else QUIET)
        if found is not None:
            return found
        time.sleep(0.02)
    return None


def back_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if re.match(r"wake: remote \S+ is back", r.getMessage())]


def test_the_wake_word_goes_back_to_the_server_as_soon_as_the_stt_finds_it_back(settings, caplog):
    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.triggers.wake_wyoming import RemoteWakeDetector
    from voiced.wyoming.remote import RemoteWithFallback

    caplog.set_level(logging.INFO)
    port = free_port()                                  # the server is down
    s = satellite(settings, port, reconnect_backoff_s=30.0, reconnect_backoff_max_s=30.0)
    local = LoudFrameDetector(score=0.5)
    wake = RemoteWakeDetector(s, local)
    srv = stt = None
    try:
        assert wait_for(lambda: wake.health.state == "down"), wake.remote_health
        assert listen(wake, [QUIET, LOUD]).score == 0.5       # the local model listens meanwhile
        status = wake.remote_health
        assert status["scoring"] == "local" and status["requests"]["local"] == 1, status
        assert status["retry_in_s"] > 20                   # on its own it would try again in ~30 s

        srv, served = serve(port)                          # the server comes back...
        t0 = time.monotonic()
        stt = RemoteWithFallback("stt", WyomingSTT(s), None, s.wyoming)
        stt.load()                                          # ...and the STT's probe reaches it first
        assert stt.health.state == "up"
        assert wait_for(lambda: wake.health.state == "up", timeout=10), wake.remote_health
        took = time.monotonic() - t0
        assert took < 10, f"the wake word stream came back {took:.1f} s after the STT (its back-off is 30 s)"
        assert len(back_lines(caplog)) == 1, back_lines(caplog)

        found = listen(wake, [QUIET, QUIET, LOUD])
        assert found is not None and found.model == "hey_jarvis" and found.score == 1.0, found  # the server's
        assert sum(d.fired for d in served) == 1 and local.fired == 1
        status = wake.remote_health
        assert status["scoring"] == "remote" and status["requests"] == {"remote": 1, "local": 1, "busy": 0}, status
    finally:
        wake.close()
        if stt is not None:
            stt.close()
        if srv is not None:
            srv.stop()
    assert not wake._thread.is_alive(), "close() did not end the stream's thread"


def test_a_server_without_the_wake_word_is_not_back_and_does_not_flap(settings, caplog):
    from voiced.triggers.wake_wyoming import RemoteWakeDetector

    caplog.set_level(logging.INFO)
    port = free_port()
    srv, _ = serve(port, wake_names=("alexa",))
    wake = RemoteWakeDetector(satellite(settings, port, reconnect_backoff_s=0.05, reconnect_backoff_max_s=0.4),
                              LoudFrameDetector(score=0.5))
    try:
        states = set()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            states.add(wake.health.state)
            time.sleep(0.01)
        assert "up" not in states and not back_lines(caplog), (states, back_lines(caplog))
        status = wake.remote_health
        assert "offers no wake word hey_jarvis (it has alexa)" in status["last_error"], status
        failed = [r for r in caplog.records if r.getMessage().startswith("wake: remote") and "failed" in r.getMessage()]
        assert len(failed) == 1, [r.getMessage() for r in failed]   # said once, then the back-off grows
        assert 2 <= status["failures_in_row"] <= 10, status   # a false "up" would have reset it
        assert listen(wake, [LOUD]).score == 0.5          # the local model keeps listening
    finally:
        wake.close()
        srv.stop()


def test_a_server_that_accepts_but_never_answers_is_not_back(settings, caplog):
    from voiced.triggers.wake_wyoming import RemoteWakeDetector

    caplog.set_level(logging.INFO)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)                                   # the kernel accepts; nobody ever answers
        s = satellite(settings, silent.getsockname()[1], read_timeout_s=0.3, reconnect_backoff_s=5.0)
        wake = RemoteWakeDetector(s, LoudFrameDetector(score=0.5))
        try:
            assert wait_for(lambda: wake.health.state == "down", timeout=5), wake.remote_health
            assert not back_lines(caplog) and "Timeout" in wake.health.last_error, wake.remote_health
            assert listen(wake, [LOUD]).score == 0.5
        finally:
            wake.close()


@pytest.mark.parametrize("failures", [1100, 5000])
def test_the_back_off_of_a_long_outage_stays_at_its_maximum(failures):
    """2 ** 1024 does not fit a float: the 1025th failure in a row (8.5 h at 30 s) used to raise
    OverflowError in the retry thread, which then died: no way back to the server at all."""
    from voiced.config import WyomingSettings
    from voiced.wyoming.remote import RemoteHealth

    health = RemoteHealth("tcp://gpu-box:10300", WyomingSettings())
    delays = [health.failed(OSError("refused")) for _ in range(failures)]
    # jittered (voiced/retry.py): up to JITTER below 1, 2, 4 ... 30 s, never above
    from voiced.retry import JITTER

    for delay, ceiling in zip(delays, [1.0, 2.0, 4.0, 8.0, 16.0] + [30.0] * (failures - 5)):
        assert (1 - JITTER) * ceiling <= delay <= ceiling
    assert health.failures == failures
