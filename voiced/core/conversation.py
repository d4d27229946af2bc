"""Conversation rules: what ends a request without an answer, and when to listen again."""
from __future__ import annotations


def is_cancel(transcript: str, phrases: tuple[str, ...]) -> bool:
    """True when the whole request is a cancel phrase ("Never mind.", "stop!")."""
    words = " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in transcript.lower()).split())
    return words in {" ".join(p.lower().split()) for p in phrases}


def wants_follow_up(follow_up_s: float, outcome: str, played_ok: bool, cut: bool) -> bool:
    """A spoken answer that played to its end opens a window for a follow-up without the wake word."""
    return follow_up_s > 0 and outcome == "answered" and played_ok and not cut
