"""The words Whisper should expect: a short prompt that biases recognition toward them.

Whisper reads text before <|startoftranscript|> (after <|startofprev|>) as what was said
before; names in it ("Siobhan", "Sigur Rós") become more likely in the transcript. The prompt is
[stt] vocabulary, then the wake word(s) as spoken ("hey_jarvis" -> "Hey Jarvis"), joined as a
list, cut to MAX_PROMPT_TOKENS: a long prompt costs decoder time and, on non-speech, is what
Whisper says back (hallucination.prompt_echo rejects that).

The built-in responder's phrases ("what time is it") are not added: they are ordinary English
that Whisper already knows, and every word in the prompt dilutes the others.

With no [stt] vocabulary the prompt is empty: the wake word alone is not worth changing every
request's decoding (it is said before the request and is cut off by the VAD segment).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import PurePath

from voiced.config import Settings

MAX_PROMPT_TOKENS = 30


def spoken_wake_word(model: str) -> str:
    """"hey_jarvis", "hey_jarvis_v0.1", "/x/alexa_v0.1.onnx" -> "Hey Jarvis", "Alexa"."""
    name = PurePath(model).name if ("/" in model or model.endswith((".onnx", ".tflite"))) else model
    name = re.sub(r"\.(onnx|tflite)$", "", name.strip(), flags=re.I)
    name = re.sub(r"_v\d+(\.\d+)*$", "", name)
    words = [w for w in re.split(r"[\s_\-]+", name) if w]
    return " ".join(w[:1].upper() + w[1:] for w in words)


def estimated_tokens(text: str) -> int:
    """Whisper's byte-level BPE splits unusual names into ~3-character pieces; an upper bound
    for when the real tokenizer is not at hand."""
    return sum(max(1, math.ceil(len(w.encode()) / 3)) for w in re.findall(r"\w+|[^\w\s]", text))


def bias_prompt(settings: Settings, count_tokens: Callable[[str], int] | None = None,
                max_tokens: int = MAX_PROMPT_TOKENS) -> str:
    """"Anneliese, Siobhan, Sigur Rós, Hey Jarvis." for [stt] vocabulary = ["Anneliese",
    "Siobhan", "Sigur Rós"]; "" when the vocabulary is empty. Terms are kept in order until
    the next would pass `max_tokens` (counted by `count_tokens`, the engine's tokenizer, or
    estimated)."""
    count = count_tokens or estimated_tokens
    vocabulary = [" ".join(str(term).split()) for term in settings.stt.vocabulary]
    vocabulary = [term for term in vocabulary if term]
    if not vocabulary:
        return ""
    terms: list[str] = []
    seen: set[str] = set()
    wake = [spoken_wake_word(m) for m in settings.wake.models]
    for term in vocabulary + wake:
        key = term.casefold()
        if not term or key in seen:
            continue
        candidate = ", ".join(terms + [term]) + "."
        if count(" " + candidate) > max_tokens:
            break
        terms.append(term)
        seen.add(key)
    return ", ".join(terms) + "." if terms else ""


def phrases_prompt(phrases) -> str:
    """("stop", "never mind") -> "Stop, never mind.": the prompt for a request that is expected
    to be one of these phrases (the stop word while a timer rings)."""
    words = [" ".join(str(p).split()) for p in phrases]
    text = ", ".join(w for w in words if w)
    return text[:1].upper() + text[1:] + "." if text else ""
