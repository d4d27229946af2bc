"""What every responder is: transcript in, reply text out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Reply:
    text: str
    source: str                 # responder that produced it: "builtin", "command", "openai"
    note: str = ""              # e.g. why a fallback answered, for the log/status
    style: Any = None           # a VoiceStyle the reply asked for (voiced.voices.hints), or None
    language: str = ""          # the language it is in (the request's), "" = the home language


@dataclass
class Context:
    """What a responder may know besides the words: a status line, earlier turns."""
    status: Callable[[], str] = lambda: "running"
    history: list[tuple[str, str]] = field(default_factory=list)   # (user, assistant), oldest first
    style_hint: Callable[[], str] = lambda: ""   # how a reply may choose its voice ("" = it may not)
    language: str = ""          # the request's language ("de"), set per turn; "" = unknown


class Responder(Protocol):
    name: str
    # True when answering changes nothing in the world: then voiced may ask it before the turn
    # is confirmed (speculation) and throw the reply away if the speaker goes on.
    side_effect_free: bool

    def respond(self, transcript: str, context: Context) -> Reply: ...
