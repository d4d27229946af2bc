"""Stage deadlines: a hung stage is abandoned, the turn ends cleanly, the daemon goes on;
hangs in a row make the daemon report itself not alive (so the watchdog restarts it)."""
from __future__ import annotations

import threading
import time

import pytest

from tests.fixtures_stt import jfk_audio
from voiced.deadlines import StageTimeout, call_with_deadline, iter_with_deadline


def test_call_returns_value_and_passes_errors():
    assert call_with_deadline("x", lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        call_with_deadline("x", lambda: 1 / 0, 1.0)


def test_hung_call_is_abandoned_within_the_deadline():
    release = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(StageTimeout, match="stt took longer than 0.3 s"):
        call_with_deadline("stt", lambda: release.wait(10), 0.3)
    assert time.monotonic() - t0 < 1.0
    release.set()


def test_iterator_deadline_is_per_item_and_stops_the_producer():
    produced = []

    def slow_tail():
        for i in range(5):
            time.sleep(0.05 if i < 2 else 2.0)
            produced.append(i)
            yield i

    got = []
    with pytest.raises(StageTimeout):
        for item in iter_with_deadline("tts", slow_tail, 0.5):
            got.append(item)
    assert got == [0, 1]
    time.sleep(2.3)
    assert len(produced) <= 4, "the producer kept going after the consumer gave up"


class HungEngine:
    """A model that never returns: a fault this machine cannot cause for real."""

    def __init__(self, real):
        self.real, self.info, self.state = real, real.info, real.state
        self.release = threading.Event()

    def transcribe(self, audio, *args):
        self.release.wait(30)
        raise RuntimeError("released after the test")   # its result would be dropped anyway


def test_daemon_abandons_a_hung_transcription_and_goes_on(daemon):
    real, original = daemon.stt, daemon.settings
    daemon.settings = original.model_copy(update={"watchdog": original.watchdog.model_copy(
        update={"stt_timeout_s": 1.0, "hung_stages_to_restart": 2})})
    hung = HungEngine(real)
    daemon.stt = hung
    try:
        for attempt in (1, 2):
            t0 = time.monotonic()
            with pytest.raises(StageTimeout):
                daemon.handle_utterance(jfk_audio())
            assert time.monotonic() - t0 < 3.0
            assert daemon.pipeline.state.value == "idle"
            assert daemon.pipeline.turns[-1].outcome.startswith("error: stt took longer")
            alive, why = daemon.alive()
            assert alive == (attempt < 2), why
        assert "abandoned" in why
        # The engine recovers: the next turn works and the daemon is alive again.
        daemon.stt, daemon.settings = real, original
        result = daemon.handle_utterance(jfk_audio())
        assert "ask not what your country" in result["transcript"].lower()
        assert daemon.alive()[0]
    finally:
        hung.release.set()
        daemon.stt, daemon.settings = real, original
