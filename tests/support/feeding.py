"""Audio fed straight into a running Daemon's owner loop (no sound server), and waiting for
the turn it makes: for the core tests that need many exact turns quickly."""
from __future__ import annotations

import time

import numpy as np
import pytest

FRAME = 1280   # 80 ms at 16 kHz
RATE = 16_000


def frames_of(audio: np.ndarray):
    """int16 frames of float (-1..1) or int16 audio."""
    pcm = audio if audio.dtype == np.int16 else np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        yield pcm[i:i + FRAME]


def feed(daemon, audio: np.ndarray, realtime: float = 0.0) -> None:
    """Faster than real time (or `realtime` x), but never more than the owner's frame queue
    holds: a real capture cannot run ahead of the clock; frames past the cap are dropped as
    overrun."""
    for frame in frames_of(audio):
        while daemon.owner._frames_queued > 16:
            time.sleep(0.005)
        daemon.owner.post_frame(frame)
        if realtime:
            time.sleep(FRAME / RATE / realtime)


def last_turn_id(daemon) -> int:
    turns = daemon.snapshot().turns
    return turns[-1].id if turns else 0


def wait_turn_end(daemon, after: int, timeout: float = 60.0):
    """The last turn after turn `after`, once the daemon is idle again."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        turns = [t for t in daemon.snapshot().turns if t.id > after]
        if turns and daemon.snapshot().state.value == "idle":
            return turns[-1]
        time.sleep(0.05)
    pytest.fail(f"no turn ended within {timeout} s: {daemon.snapshot()}")
