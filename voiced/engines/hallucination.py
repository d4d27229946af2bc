"""Recognising what Whisper says when nobody spoke.

On silence, noise or music Whisper emits text seen in its training subtitles ("Thank you.",
" you", "Thanks for watching!", "Subtitles by the Amara.org community"), annotations
("[BLANK_AUDIO]", "(music)"), bare punctuation (" . . . .") or loops of one phrase. The
no-speech gate in the engine catches most of it; this is the second line. Only a transcript
that is *entirely* such text is rejected: real speech followed by "Thank you." is kept.

Whisper hallucinates in the language it decodes in: German silence becomes "Untertitel im
Auftrag des ZDF" or "Vielen Dank fürs Zuschauen", French "Sous-titrage ST' 501". A transcript
is checked against its own language's phrases (LANGUAGE_PHRASES, LANGUAGE_CREDIT_PREFIXES), the
English ones (Whisper's sign-offs leak into every language) and the language-independent rules
(annotations, punctuation, loops, the Amara.org credit); an unknown language ("") against all.
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

# Per language (Whisper's codes), the same two kinds, written as normalise() leaves them
# (lower case, no apostrophes, punctuation as spaces, accents kept). The credit prefixes are
# specific enough that a real request ("Untertitel einschalten") is not one of them. A lone
# article or conjunction ("y", "e", "und") is what Whisper decodes from noise when forced to a
# language (measured: faster-whisper base on silence, white and pink noise, gate off).
LANGUAGE_PHRASES: dict[str, frozenset[str]] = {
    "de": frozenset({
        "vielen dank fürs zuschauen", "vielen dank für ihre aufmerksamkeit", "danke fürs zuschauen",
        "vielen dank fürs zusehen", "danke fürs zusehen", "vielen dank", "danke", "danke schön", "dankeschön",
        "bis zum nächsten mal", "bis zum nächsten video", "bis bald", "tschüss", "tschüs", "ciao",
        "abonniert den kanal", "das wars", "musik", "applaus", "ich danke ihnen für ihre aufmerksamkeit",
        "vielen dank fürs zuhören", "danke fürs zuhören", "und tschüss", "swr 2020", "swr 2021",
        "copyright wdr 2020", "copyright wdr 2021", "äh", "ähm", "hm", "und", "die", "der",
    }),
    "fr": frozenset({
        "merci", "merci beaucoup", "merci à tous", "merci davoir regardé", "merci davoir regardé cette vidéo",
        "merci de votre attention", "merci pour votre attention", "merci de regarder", "à bientôt",
        "au revoir", "à la prochaine", "abonnez vous", "nhésitez pas à vous abonner",
        "noubliez pas de vous abonner", "abonnez vous à la chaîne", "musique", "applaudissements",
        "bonne journée", "voilà", "euh", "hum", "ah", "et", "le", "la", "de",
    }),
    "es": frozenset({
        "gracias", "muchas gracias", "gracias por ver", "gracias por ver el video", "gracias por ver el vídeo",
        "gracias por mirar", "gracias por su atención", "gracias por vernos", "suscríbete", "suscríbete al canal",
        "no olvides suscribirte", "hasta la próxima", "nos vemos en el próximo video", "adiós", "chao",
        "música", "aplausos", "eh", "este", "y", "de", "el", "la",
    }),
    "it": frozenset({
        "grazie", "grazie mille", "grazie a tutti", "grazie per la visione", "grazie per lattenzione",
        "grazie per aver guardato", "iscriviti al canale", "iscrivetevi al canale", "ciao a tutti", "ciao",
        "alla prossima", "a presto", "arrivederci", "musica", "applausi", "ehm", "e", "il", "la", "di",
    }),
    "nl": frozenset({
        "bedankt voor het kijken", "bedankt", "dank je wel", "dank u wel", "dankjewel", "dank je", "bedankt voor uw aandacht",
        "tot de volgende keer", "tot ziens", "doei", "abonneer", "abonneer op het kanaal", "muziek",
        "applaus", "tv gelderland 2021", "uh", "en", "de", "het",
    }),
    "pt": frozenset({
        "obrigado", "obrigada", "muito obrigado", "muito obrigada", "obrigado por assistir",
        "obrigada por assistir", "obrigado pela atenção", "obrigada pela atenção", "inscreva se no canal",
        "inscreva se", "até a próxima", "até o próximo vídeo", "até logo", "tchau", "música", "aplausos", "é isso", "e", "o", "a", "de",
    }),
    # Where detection lands on noise ("auto"): Whisper's phantoms in these are well known too.
    "ja": frozenset({"ご視聴ありがとうございました", "ご視聴ありがとうございます", "ありがとうございました", "おやすみなさい"}),
    "ko": frozenset({"시청해주셔서 감사합니다", "감사합니다", "구독과 좋아요 부탁드립니다"}),
    "zh": frozenset({"谢谢观看", "谢谢大家", "谢谢", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目"}),
}
LANGUAGE_CREDIT_PREFIXES: dict[str, tuple[str, ...]] = {
    "de": ("untertitel im auftrag", "untertitelung im auftrag", "untertitel von", "untertitel der amara",
           "untertitelung des", "untertitelung der", "untertitelung aufgrund", "untertitel des", "untertitel vom",
           "untertitel bereitgestellt", "untertitelung durch", "untertitel durch", "im auftrag des zdf"),
    "fr": ("sous titrage st", "sous titrage société radio canada", "sous titrage fr", "sous titrage par",
           "sous titres réalisés", "sous titres realises", "sous titres par", "sous titres fait par",
           "sous titré par", "transcription par", "traduction par"),
    "es": ("subtítulos realizados por", "subtitulos realizados por", "subtítulos por", "subtitulos por",
           "subtitulado por", "subtítulos hechos por", "subtítulos de", "subtítulos creados por", "transcripción por",
           "traducción por"),
    "it": ("sottotitoli creati dalla", "sottotitoli e revisione", "sottotitoli a cura di", "sottotitoli di",
           "sottotitoli realizzati", "sottotitolato da", "sottotitoli by", "trascrizione a cura"),
    "nl": ("ondertiteling door", "ondertiteld door", "ondertitels ingediend door", "ondertitels door",
           "ondertiteling tv gelderland", "ondertiteling ingediend"),
    "pt": ("legendas pela comunidade", "legendas por", "legendado por", "legenda por", "legendas de",
           "legendas adriana", "legenda adriana", "legendas feitas por", "transcrição por", "tradução por"),
    "zh": ("字幕by", "字幕 by", "字幕提供", "字幕由"),
}
CREDIT_ANYWHERE_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "de": ("im auftrag des zdf", "zdf für funk"),
    "fr": ("radio canada", "st 501"),
    "it": ("qtss",),
    "nl": ("tv gelderland",),
}

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


def _base(language: str) -> str:
    """"de-DE", "pt_BR" -> "de", "pt"."""
    return (language or "").split("-")[0].split("_")[0].lower()


def _rules(language: str) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """(phrases, credit prefixes, credit markers) for a transcript in `language`: its own and
    English ones; all languages' when it is unknown ("")."""
    code = _base(language)
    langs = [code] if code else list(LANGUAGE_PHRASES)
    phrases = KNOWN_PHRASES.union(*(LANGUAGE_PHRASES.get(c, frozenset()) for c in langs))
    prefixes = CREDIT_PREFIXES + tuple(p for c in langs for p in LANGUAGE_CREDIT_PREFIXES.get(c, ()))
    anywhere = CREDIT_ANYWHERE + tuple(m for c in langs for m in CREDIT_ANYWHERE_BY_LANGUAGE.get(c, ()))
    return phrases, prefixes, anywhere


def rejection_reason(text: str, language: str = "") -> str | None:
    """Why `text` looks like a hallucination on non-speech, or None if it looks like speech.
    `language` is the transcript's (Whisper's code); "" checks every language's phrases."""
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
    phrases, prefixes, anywhere = _rules(language)
    if norm in phrases:
        return f"typical hallucination {norm!r}"
    if norm.startswith(prefixes) or any(m in norm for m in anywhere):
        return f"subtitle credits {stripped[:40]!r}"
    return _loop(words)


def filtered_transcript(raw: str, elapsed_s: float, audio_s: float, no_speech_prob: float | None,
                        language: str = "", language_probability: float | None = None,
                        prompt: str = "") -> Transcript:
    """What an STT engine returns for decoded text: empty, with the reason, if it is a
    hallucination in `language` (or a repeat of the vocabulary `prompt` it was given)."""
    reason = rejection_reason(raw, language) or prompt_echo(raw, prompt)
    if reason:
        return Transcript("", elapsed_s, audio_s, no_speech_prob, rejected=reason, raw_text=raw,
                          language=language, language_probability=language_probability)
    return Transcript(raw, elapsed_s, audio_s, no_speech_prob, raw_text=raw,
                      language=language, language_probability=language_probability)


def prompt_echo(text: str, prompt: str) -> str | None:
    """Whisper given a vocabulary prompt may say the prompt back on non-speech: a transcript of
    two or more words that is a run of the prompt's own words is rejected."""
    words, source = _words(text), _words(prompt)
    if len(words) < 2 or not source:
        return None
    n = len(words)
    if any(source[i:i + n] == words for i in range(len(source) - n + 1)):
        return f"repeats the vocabulary prompt {text.strip()[:40]!r}"
    return None


def is_hallucination(text: str, language: str = "") -> bool:
    return rejection_reason(text, language) is not None


# Whisper's own rule (transcribe.py: no_speech_threshold with logprob_threshold -1.0): the
# no-speech token alone is not enough. Real speech it is unsure of but decodes confidently is kept:
# 3 of 20 real Spanish sentences had p 0.72-0.80 with an average log-probability of -0.13 to -0.40,
# where silence and noise mostly decode at -3 to -5.6. Mostly: on digital silence with Dutch forced,
# Whisper said "TV GELDERLAND 2020." confidently at p 0.93, so a near-certain "no speech" stands.
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_CERTAIN = 0.9


def no_speech(p_none: float | None, avg_logprob: float | None, threshold: float) -> str | None:
    """Why a decode is taken for no speech, or None: the no-speech probability is at or over
    `threshold` and the decoded tokens were not confident (or their confidence is unknown), or it
    is at or over NO_SPEECH_CERTAIN whatever they were."""
    if p_none is None or p_none < threshold:
        return None
    if avg_logprob is not None and avg_logprob >= LOGPROB_THRESHOLD and p_none < max(threshold, NO_SPEECH_CERTAIN):
        return None
    confidence = f", average log-probability {avg_logprob:.2f} < {LOGPROB_THRESHOLD}" if avg_logprob is not None else ""
    return f"no speech (p={p_none:.2f} >= {threshold}{confidence})"
