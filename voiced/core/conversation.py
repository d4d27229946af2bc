"""Conversation rules: what ends a request without an answer, and when to listen again."""
from __future__ import annotations


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def is_cancel(transcript: str, phrases: tuple[str, ...]) -> bool:
    """True when the whole request is a cancel phrase ("Never mind.", "stop!")."""
    return " ".join(_words(transcript)) in {" ".join(_words(p)) for p in phrases}


def asks_to_stop(transcript: str, phrases: tuple[str, ...], max_words: int = 4) -> bool:
    """While something rings, a short utterance with a cancel phrase in it ("Stop.", "Stop,
    stop!", "OK, stop it", "stop the timer") is a stop: people add words to a command shouted
    at an alarm. Longer speech is someone talking, not telling it to stop."""
    words = _words(transcript)
    if not words or len(words) > max_words:
        return False
    for phrase in phrases:
        target = _words(phrase)
        n = len(target)
        if n and any(words[i:i + n] == target for i in range(len(words) - n + 1)):
            return True
    return False


def wants_follow_up(follow_up_s: float, outcome: str, played_ok: bool, cut: bool) -> bool:
    """A spoken answer that played to its end opens a window for a follow-up without the wake word."""
    return follow_up_s > 0 and outcome == "answered" and played_ok and not cut
