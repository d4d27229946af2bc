"""Recognising what Whisper says when nobody spoke.

On silence, noise or music Whisper emits text seen in its training subtitles ("Thank you.",
" you", "Thanks for watching!", "Subtitles by the Amara.org community"), annotations
("[BLANK_AUDIO]", "(music)"), bare punctuation (" . . . .") or loops of one phrase. The
no-speech gate in the engine catches most of it; this is the second line. Only a transcript
that is *entirely* such text is rejected: real speech followed by "Thank you." is kept.
"""
from __future__ import annotations

import re
import unicodedata

from voiced.engines.base import Transcript

# Whole transcripts (after normalise()) that are almost always hallucinated on non-speech.
# Short sign-offs are here because a voice request never consists of only them.
KNOWN_PHRASES = frozenset({
    "you", "thank you", "thank you very much", "thank you so much", "thanks", "thank you all",
    "thanks for watching", "thank you for watching", "thanks for watching and see you next time",
    "thank you for watching and see you next time", "thanks for listening", "thank you for listening",
    "please subscribe", "please subscribe to my channel", "like and subscribe",
    "dont forget to like and subscribe", "subscribe to my channel", "see you next time",
    "see you in the next video", "bye", "bye bye", "ill see you next time",
    "so", "oh", "hmm", "uh", "um", "ah", "the", "i", "a",
})

# Credits lines from subtitle files, anywhere at the start of the transcript.
CREDIT_PREFIXES = (
    "subtitles by", "subtitle by", "subtitled by", "subtitling by", "captions by", "captioned by",
    "captioning by", "closed captioning by", "transcribed by", "transcription by", "translated by",
    "translation by", "english subtitles", "subtitles made by", "sync and corrections by",
)
CREDIT_ANYWHERE = ("amara org",)

# Annotations: [BLANK_AUDIO], (music), *applause*, <noise>, and lyrics between note signs.
_NOTES = "♪♫♬🎵🎶"
_MUSIC = re.compile(f"[{_NOTES}]")
_ANNOTATION = re.compile(rf"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|<[^>]*>|[{_NOTES}]+[^{_NOTES}]*[{_NOTES}]+")
_APOSTROPHES = re.compile(r"['’`]")

MIN_LOOP_REPEATS = 3          # a phrase said three times in a row ...
MIN_WORD_REPEATS = 5          # ... or one word five times ("no no no" can be real)
LOOP_COVERAGE = 0.6           # ... covering most of the transcript
MIN_WORDS_FOR_DIVERSITY = 20
MIN_DISTINCT_RATIO = 0.25     # 20+ words of which under a quarter differ: a degenerate loop


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped ("don't" -> "dont"), other punctuation as spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _APOSTROPHES.sub("", text)
    text = "".join(ch if ch.isalnum() else " " for ch in text)
    return " ".join(text.split())


def _words(text: str) -> list[str]:
    return normalise(text).split()


def _loop(words: list[str]) -> str | None:
    """The longest run of one n-gram repeated back to back, if it dominates the transcript."""
    n_words = len(words)
    for size in range(1, n_words // MIN_LOOP_REPEATS + 1):
        need = MIN_WORD_REPEATS if size == 1 else MIN_LOOP_REPEATS
        for start in range(n_words - size * need + 1):
            gram = words[start:start + size]
            repeats = 1
            while words[start + repeats * size:start + (repeats + 1) * size] == gram:
                repeats += 1
            if repeats >= need and repeats * size >= LOOP_COVERAGE * n_words:
                return f"repetition loop ({' '.join(gram)!r} x{repeats})"
    if n_words >= MIN_WORDS_FOR_DIVERSITY and len(set(words)) < MIN_DISTINCT_RATIO * n_words:
        return f"repetition loop ({len(set(words))} distinct words in {n_words})"
    return None


def rejection_reason(text: str) -> str | None:
    """Why `text` looks like a hallucination on non-speech, or None if it looks like speech."""
    stripped = text.strip()
    if not stripped:
        return "empty transcript"
    if _MUSIC.search(stripped) and not _words(_MUSIC.sub(" ", stripped)):
        return "music symbols only"
    without_notes = _ANNOTATION.sub(" ", stripped)
    if without_notes != stripped and not _words(_MUSIC.sub(" ", without_notes)):
        return f"non-speech annotation {stripped[:40]!r}"
    words = _words(without_notes)
    if not words:
        return "punctuation only"
    norm = " ".join(words)
    if norm in KNOWN_PHRASES:
        return f"typical hallucination {norm!r}"
    if norm.startswith(CREDIT_PREFIXES) or any(m in norm for m in CREDIT_ANYWHERE):
        return f"subtitle credits {stripped[:40]!r}"
    return _loop(words)


def filtered_transcript(raw: str, elapsed_s: float, audio_s: float, no_speech_prob: float | None) -> Transcript:
    """What an STT engine returns for decoded text: empty, with the reason, if it is a hallucination."""
    reason = rejection_reason(raw)
    if reason:
        return Transcript("", elapsed_s, audio_s, no_speech_prob, rejected=reason, raw_text=raw)
    return Transcript(raw, elapsed_s, audio_s, no_speech_prob, raw_text=raw)


def is_hallucination(text: str) -> bool:
    return rejection_reason(text) is not None
