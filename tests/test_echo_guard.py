"""The echo guard: the reply's own audio, scored as it goes to the speaker, tells a wake word
said by the user (barge-in) from the reply saying it (self-hearing). Real openWakeWord models,
real Piper speech at its own 22.05 kHz rate, fed in playback-sized blocks."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.fixtures_audio import oww_dir  # noqa: F401
from voiced.config import WakeSettings
from voiced.triggers.echo import EchoGuard
from voiced.triggers.wakeword import WakeWordDetector

pytestmark = pytest.mark.slow


def play_through(guard: EchoGuard, engine, text: str, block_s: float = 0.05) -> float:
    """What Playback does with a reply: started(), audio() per block, ended(). Returns CPU s per audio s."""
    guard.started()
    cpu = audio_s = 0.0
    for chunk in engine.synthesize(text):
        audio = chunk.audio.astype(np.float32)
        block = int(chunk.sample_rate * block_s)
        for i in range(0, len(audio), block):
            t0 = time.process_time()
            guard.audio(audio[i:i + block], chunk.sample_rate)
            cpu += time.process_time() - t0
        audio_s += len(audio) / chunk.sample_rate
    return cpu / audio_s


@pytest.fixture(scope="module")
def guard(oww_dir):  # noqa: F811
    return EchoGuard(WakeWordDetector(WakeSettings(), oww_dir), threshold=0.2, window_s=2.0)


def test_a_reply_that_says_the_wake_word_guards_until_its_echo_is_gone(guard, piper_voice):
    cost = play_through(guard, piper_voice, "You said: please repeat after me, hey Jarvis.")
    print(f"echo guard: reply peak score {guard.peak:.3f}; {cost * 1000:.1f} ms CPU per second of reply")
    assert guard.peak >= 0.5 and guard.is_echo(), "the reply says the wake word: its echo must be ignored"
    guard.ended()
    now = time.monotonic()
    assert guard.is_echo(now + 1.9), "the echo may still come back just after the reply ends"
    assert not guard.is_echo(now + 2.1), "after the window the user's wake word counts again"
    assert cost < 0.1


def test_an_ordinary_reply_leaves_barge_in_open(guard, piper_voice):
    guard.ended()
    guard._guard_until = -1e9   # forget the previous test's reply
    play_through(guard, piper_voice, "It is a quarter past two. The weather is mild and dry today.")
    print(f"ordinary reply peak score {guard.peak:.3f}")
    assert guard.peak < guard.threshold and not guard.is_echo()
    guard.ended()
    assert not guard.is_echo()
