"""The turn states, the transitions allowed between them, and the record of each turn.

idle -> listening -> transcribing -> thinking -> speaking -> idle; any busy state may go
back to idle (no speech, rejected transcript, error, cancel). Only the turn owner
(core/owner.py) writes here, from its one thread; it tells its listeners of each change and
everyone else reads the frozen Turn records through the owner's snapshots.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Callable

log = logging.getLogger(__name__)


class PipelineState(str, Enum):
    STARTING = "starting"
    IDLE = "idle"                   # listening for the wake word
    LISTENING = "listening"         # recording the request
    TRANSCRIBING = "transcribing"
    THINKING = "thinking"
    SPEAKING = "speaking"
    STOPPING = "stopping"


S = PipelineState
TRANSITIONS: dict[PipelineState, frozenset[PipelineState]] = {
    S.STARTING: frozenset({S.IDLE, S.STOPPING}),
    S.IDLE: frozenset({S.LISTENING, S.TRANSCRIBING, S.SPEAKING, S.STOPPING}),   # TRANSCRIBING: uploaded audio
    S.LISTENING: frozenset({S.TRANSCRIBING, S.IDLE, S.STOPPING}),
    S.TRANSCRIBING: frozenset({S.THINKING, S.IDLE, S.STOPPING}),
    S.THINKING: frozenset({S.SPEAKING, S.IDLE, S.STOPPING}),
    S.SPEAKING: frozenset({S.IDLE, S.LISTENING, S.STOPPING}),
    S.STOPPING: frozenset(),
}

# Timing marks of one turn, in the order they happen (monotonic seconds).
MARKS = ("wake", "end_of_speech", "transcript", "reply", "first_audio", "done")


class InvalidTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class Turn:
    id: int
    trigger: str                                   # "wake:hey_jarvis", "cli", "api"...
    started: float                                 # wall clock (time.time())
    marks: dict[str, float] = field(default_factory=dict)
    transcript: str = ""
    reply: str = ""
    outcome: str = "in progress"                   # "answered", "no speech", "rejected: ...", "error: ..."
    language: str = ""                             # the request's language, when known
    engines: dict[str, str] = field(default_factory=dict)

    def durations(self) -> dict[str, float]:
        """Seconds per stage, from consecutive marks that are present."""
        out, m = {}, self.marks
        pairs = [("record", "wake", "end_of_speech"), ("stt", "end_of_speech", "transcript"),
                 ("respond", "transcript", "reply"), ("tts_first_audio", "reply", "first_audio"),
                 ("voice_to_voice", "end_of_speech", "first_audio"), ("total", "wake", "done")]
        for name, a, b in pairs:
            if a in m and b in m:
                out[name] = round(m[b] - m[a], 3)
        return out


class Pipeline:
    def __init__(self, keep_turns: int = 50):
        self._lock = threading.Lock()
        self.state = PipelineState.STARTING
        self.turns: deque[Turn] = deque(maxlen=keep_turns)
        self.current: Turn | None = None
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[PipelineState, PipelineState, Turn | None], None]] = []
        self._turn_listeners: list[Callable[[Turn], None]] = []

    def subscribe(self, fn: Callable[[PipelineState, PipelineState, Turn | None], None]) -> None:
        self._listeners.append(fn)

    def on_turn_end(self, fn: Callable[[Turn], None]) -> None:
        self._turn_listeners.append(fn)

    def to(self, new: PipelineState) -> None:
        with self._lock:
            old = self.state
            if new == old:
                return
            if new not in TRANSITIONS[old]:
                raise InvalidTransition(f"{old.value} -> {new.value} is not allowed")
            self.state = new
            turn = self.current
        log.debug("state %s -> %s", old.value, new.value)
        for fn in self._listeners:
            fn(old, new, turn)

    # -- turns --------------------------------------------------------------
    def claim(self, trigger: str, new: PipelineState, mark: str = "wake") -> Turn | None:
        """Atomically start a turn if idle (mic, API and CLI triggers race for it); None if busy."""
        with self._lock:
            if self.state != PipelineState.IDLE or new not in TRANSITIONS[self.state]:
                return None
            old, self.state = self.state, new
            self.current = turn = Turn(id=next(self._ids), trigger=trigger, started=time.time(),
                                       marks={mark: time.monotonic()})
        for fn in self._listeners:
            fn(old, new, turn)
        return turn

    def begin_turn(self, trigger: str, mark: str = "wake") -> Turn:
        with self._lock:
            self.current = Turn(id=next(self._ids), trigger=trigger, started=time.time(),
                                marks={mark: time.monotonic()})
            return self.current

    def mark(self, name: str, at: float | None = None, **fields) -> None:
        with self._lock:
            if self.current is None:
                return
            marks = dict(self.current.marks)
            if name:
                marks[name] = time.monotonic() if at is None else at
            self.current = replace(self.current, marks=marks, **fields)

    def end_turn(self, outcome: str) -> Turn | None:
        self.mark("done", outcome=outcome)
        with self._lock:
            turn, self.current = self.current, None
            if turn is not None:
                self.turns.append(turn)
        if turn is not None:
            for fn in self._turn_listeners:
                fn(turn)
        return turn


def describe(turn: Turn) -> str:
    """The turn's log line."""
    timings = " ".join(f"{k}={v:.2f}s" for k, v in turn.durations().items())
    return (f"turn {turn.id} ({turn.trigger}) {turn.outcome}: heard {turn.transcript!r}, said {turn.reply!r}; "
            f"{timings}")
