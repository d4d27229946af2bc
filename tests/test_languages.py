"""Replies in the request's language: the builtin responder's German, French and Spanish, the
openai responder told the language, and the voice chosen per language (espeak-ng's for it, or
the one configured), checked by transcribing what it says with the real Whisper."""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest

from voiced.responder.base import Context
from voiced.responder.builtin import BuiltinResponder

NOW = dt.datetime(2026, 11, 30, 9, 45)


@pytest.mark.parametrize("language, asked, expected", [
    ("de", "Wie spät ist es?", "Es ist 9:45 Uhr."),
    ("fr", "Quelle heure est-il ?", "Il est 9 h 45."),
    ("es", "¿Qué hora es?", "Son las 9:45."),
    ("de", "Welches Datum haben wir heute?", "Heute ist Montag, der 30. November 2026."),
    ("fr", "Quel jour sommes-nous ?", "Nous sommes le lundi 30 novembre 2026."),
    ("es", "¿Qué fecha es hoy?", "Hoy es lunes, 30 de noviembre de 2026."),
    ("de", "Mach das Licht an.", "Du hast gesagt: Mach das Licht an."),
    ("en", "What time is it?", "It's 9:45 AM."),
    ("it", "Che ore sono?", "You said: Che ore sono?"),   # no Italian here: English, said plainly
])
def test_the_builtin_responder_answers_in_the_request_language(language, asked, expected):
    assert BuiltinResponder(lambda: NOW).respond(asked, Context(language=language)).text == expected


def test_the_openai_responder_is_told_the_language():
    from voiced.config import ResponderSettings
    from voiced.responder.openai import OpenAIResponder

    r = OpenAIResponder(ResponderSettings(kind="openai"), BuiltinResponder())
    german = r._messages("Wie spät ist es?", Context(language="de"))[0]["content"]
    english = r._messages("What time is it?", Context(language="en"))[0]["content"]
    assert "German" in german and "answer in it" in german and "German" not in english


def test_a_reply_in_german_is_spoken_by_a_german_voice(settings, fast_whisper_settings, caplog):
    from voiced.audio.dsp import resample
    from voiced.engines.language_voices import LanguageVoices
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT

    german_stt = fast_whisper_settings.model_copy(
        update={"stt": fast_whisper_settings.stt.model_copy(update={"language": ("de",)})})
    stt = FasterWhisperSTT(german_stt.stt, german_stt)
    stt.load()

    voices = LanguageVoices(settings)
    assert voices.engine_for("en") is None, "the home language keeps the configured voice"
    with caplog.at_level(logging.INFO):
        german = voices.engine_for("de")
    assert german is not None and "espeak" in caplog.text
    chunks = list(german.synthesize("Heute ist Montag, der 30. November 2026."))
    audio = resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, 16_000)
    heard = stt.transcribe(audio).text
    print("the German voice said:", heard)
    assert "heute" in heard.lower() and "november" in heard.lower(), heard
    with caplog.at_level(logging.WARNING):
        assert voices.engine_for("xx") is None
    assert "no voice for replies in 'xx'" in caplog.text
    voices.close()


def test_a_configured_voice_for_a_language_is_used(settings):
    from voiced.engines.language_voices import LanguageVoices

    tts = settings.tts.model_copy(update={"voices_by_language": {"fr": "piper:joe-us", "es": "nonsense:x"}})
    voices = LanguageVoices(settings.model_copy(update={"tts": tts}))
    try:
        assert type(voices.engine_for("fr")).__name__ == "PiperEngine"
        assert voices.engine_for("es") is None     # a bad entry: logged, the default voice speaks
    finally:
        voices.close()
