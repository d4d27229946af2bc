"""Everything that can happen to the daemon, as frozen messages for the turn owner's queue.

Threads never change the turn state themselves: the capture reader, the hotkey reader, the
web/API threads, signal handlers, the reload loader and the turn workers each post one of
these, and the owner decides (owner.py). A reply box lets a caller wait for the decision.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ReplyBox:
    """One answer from the owner to a waiting caller (an API request, a test)."""

    def __init__(self):
        self._done = threading.Event()
        self.value: Any = None

    def put(self, value: Any) -> None:
        self.value = value
        self._done.set()

    def wait(self, timeout: float | None = None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError("the daemon did not answer in time")
        return self.value


@dataclass(frozen=True)
class Message:
    pass


# -- inputs -----------------------------------------------------------------
@dataclass(frozen=True)
class MicFrame(Message):
    pcm: np.ndarray = field(repr=False)     # int16, one [audio] chunk_ms frame at 16 kHz
    at: float                                # monotonic time it was captured


@dataclass(frozen=True)
class Key(Message):
    pressed: bool
    held_s: float = 0.0


@dataclass(frozen=True)
class Trigger(Message):
    """Start a listening turn now (API, CLI), as if the wake word had been heard."""
    source: str
    box: ReplyBox = field(default_factory=ReplyBox, compare=False)


@dataclass(frozen=True)
class Say(Message):
    text: str
    style: Any = None
    box: ReplyBox = field(default_factory=ReplyBox, compare=False)


@dataclass(frozen=True)
class Utterance(Message):
    """A whole recorded request (float32, 16 kHz mono); the reply comes back as audio."""
    audio: np.ndarray = field(repr=False)
    trigger: str = "api"
    style: Any = None
    box: ReplyBox = field(default_factory=ReplyBox, compare=False)


@dataclass(frozen=True)
class CancelTurn(Message):
    reason: str
    turn: int | None = None      # only this turn (a late cancel must not end the next one)


@dataclass(frozen=True)
class ReloadRequested(Message):
    """SIGHUP: re-read the config (off the owner's thread, see Reloaded)."""


@dataclass(frozen=True)
class Reloaded(Message):
    """New settings and the pieces built for them, ready to swap in between turns."""
    settings: Any
    parts: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ReloadFailed(Message):
    error: str


@dataclass(frozen=True)
class Stop(Message):
    reason: str


@dataclass(frozen=True)
class Loaded(Message):
    """The models are loaded and the devices started: go idle, tell systemd READY."""


@dataclass(frozen=True)
class LoadFailed(Message):
    error: BaseException = field(compare=False)


# -- from the turn workers (stale ones, of an older turn, are dropped) ------
@dataclass(frozen=True)
class Progress(Message):
    turn: int
    state: Any = None                        # the PipelineState the turn moves to, or None
    mark: str = ""                           # a timing mark ("transcript", "first_audio"...)
    fields: dict = field(default_factory=dict, compare=False)   # transcript=..., reply=...
    hung: bool | None = None                 # a stage finished (False) or was abandoned (True)


@dataclass(frozen=True)
class Finished(Message):
    turn: int
    outcome: str
    follow_up: bool = False                  # a spoken answer: listen again without the wake word
    failed: bool = False                     # play the "failed" earcon
    result: Any = field(default=None, compare=False)   # what a waiting caller gets


# -- from Home Assistant (homeassistant/satellite.py) ------------------------
@dataclass(frozen=True)
class HaEvent(Message):
    """A pipeline event of the current Assist run (aioesphomeapi VoiceAssistantEventType);
    -1: Home Assistant went away."""
    kind: int
    data: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class HaAnnounce(Message):
    """Play these URLs (pre-announcement chime, then the message); `reply`: tell Home
    Assistant when done; `start_conversation`: then listen without the wake word."""
    urls: tuple
    text: str = ""
    start_conversation: bool = False
    reply: bool = True


@dataclass(frozen=True)
class HaTimer(Message):
    event: int            # aioesphomeapi VoiceAssistantTimerEventType
    timer_id: str
    name: str = ""
