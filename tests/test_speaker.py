"""The speaker (finding 5 of issue 13): replies and earcons played one at a time on one
thread, each with its own stop event. Before, earcon threads and the reply shared Playback's
stop flag and "playing" state: whichever ended first cleared the other's and told the echo
guard that the reply had ended in the middle of it. Real PyAudio output on a private
PulseAudio server."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from voiced.audio.playback import Playback
from voiced.audio.speaker import Speaker
from voiced.config import AudioSettings
from voiced.engines.base import SpeechChunk


def tone(seconds: float, freq: float = 440.0, rate: int = 24_000) -> SpeechChunk:
    t = np.arange(int(seconds * rate)) / rate
    return SpeechChunk((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


class Log:
    """The echo guard's view of playback: started / ended, from the speaker thread."""

    def __init__(self):
        self.events: list[tuple[str, float]] = []

    def started(self):
        self.events.append(("started", time.monotonic()))

    def audio(self, _piece, _rate):
        pass

    def ended(self):
        self.events.append(("ended", time.monotonic()))


@pytest.fixture()
def speaker(pulse):
    playback = Playback(AudioSettings())
    playback.observer = Log()
    sp = Speaker(playback)
    yield sp
    sp.close()


def test_plays_never_overlap_and_a_stop_cuts_only_its_own(speaker):
    results = {}

    def play(tag, seconds):
        results[tag] = speaker.play([tone(seconds)], tag=tag)
    reply = threading.Thread(target=play, args=("reply", 1.2))
    reply.start()
    time.sleep(0.1)
    second = threading.Thread(target=play, args=("second", 0.4))
    second.start()
    speaker.cue(tone(0.2))            # an earcon now: skipped, never over a reply
    time.sleep(0.3)
    speaker.stop("reply")             # cut the first; the queued one must still play in full
    reply.join(10)
    second.join(10)
    assert results["reply"].cut and results["reply"].played_s < 1.0, results["reply"]
    assert not results["second"].cut and results["second"].played_s == pytest.approx(0.4, abs=0.06), results["second"]
    kinds = [k for k, _ in speaker.playback.observer.events]
    assert kinds == ["started", "ended", "started", "ended"], kinds   # strictly one after the other


def test_a_stop_before_a_queued_play_starts_is_not_lost(speaker):
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", speaker.play([tone(0.6)], tag=1)))
    first.start()
    time.sleep(0.1)
    queued = threading.Thread(target=lambda: results.setdefault("queued", speaker.play([tone(0.6)], tag=2)))
    queued.start()
    time.sleep(0.1)
    speaker.stop(2)                   # before it started: it must never play
    first.join(10)
    queued.join(10)
    assert not results["first"].cut and results["first"].played_s == pytest.approx(0.6, abs=0.06)
    assert results["queued"].cut and results["queued"].played_s == 0.0
    assert [k for k, _ in speaker.playback.observer.events] == ["started", "ended"]


def test_an_earcon_plays_when_nothing_else_does(speaker):
    speaker.cue(tone(0.2))
    end = time.monotonic() + 5
    while len(speaker.playback.observer.events) < 2 and time.monotonic() < end:
        time.sleep(0.02)
    assert [k for k, _ in speaker.playback.observer.events] == ["started", "ended"]
    assert speaker.playback.ok, speaker.playback.detail
