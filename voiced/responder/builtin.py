"""The built-in responder: time, date, what it can do, its status; echoes anything else."""
from __future__ import annotations

import datetime as dt
import re
from typing import Callable

from . import languages
from .base import Context, Reply

_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\b(what('s| is)? (the )?time|time is it|tell me the time|current time)\b"), "time"),
    (re.compile(r"\b(what('s| is)? (the |today'?s )?date|what day|which day|today'?s date)\b"), "date"),
    (re.compile(r"\b(what can you do|help me|what do you do|your abilities)\b"), "help"),
    (re.compile(r"\b(status|are you (ok|okay|working|alive)|how are you)\b"), "status"),
    (re.compile(r"^\s*(hello|hi|hey)\b"), "hello"),
]


def _spoken_time(now: dt.datetime) -> str:
    hour = now.hour % 12 or 12
    return f"It's {hour}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}."


class BuiltinResponder:
    name = "builtin"
    side_effect_free = True

    def __init__(self, clock: Callable[[], dt.datetime] = dt.datetime.now):
        self._clock = clock

    def respond(self, transcript: str, context: Context) -> Reply:
        words = transcript.lower().strip()
        now = self._clock()
        lang = getattr(context, "language", "") or ""
        if lang and lang != "en":   # German, French, Spanish: languages.py
            other = languages.intent(lang, words) or "echo"
            text = languages.answer(lang, other, transcript, now)
            if text is not None:
                return Reply(text=text, source=self.name, note=f"{other} ({lang})")
        intent = next((name for pattern, name in _RULES if pattern.search(words)), "echo")
        if intent == "time":
            text = _spoken_time(now)
        elif intent == "date":
            text = f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}."
        elif intent == "help":
            text = ("I can tell you the time and the date, tell you how I'm doing, "
                    "and repeat what you say. Connect a language model for more.")
        elif intent == "status":
            text = f"I'm {context.status()}."
        elif intent == "hello":
            text = "Hello! How can I help?"
        else:
            text = f"You said: {transcript.strip()}"
        return Reply(text=text, source=self.name, note=intent)
