"""More languages and their vocabulary on the speech-to-text side: language forced or detected
(Transcript.language / language_probability) by both Whisper engines, per-language
hallucination filters, the vocabulary prompt (measured with and without) and what Wyoming's
describe offers.

German, French and Spanish requests are spoken by SVOX Pico when installed (scripts/setup.sh
--test), else by espeak-ng, which speaks them badly: the sentences here are the ones (of several
tried) it says clearly enough for Whisper base to detect them. Run with -s to see the numbers.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures_audio import espeak
from tests.fixtures_stt import SENTENCES, non_speech, wer

SPEECH = Path(__file__).parent / "data" / "speech"
PAD = np.zeros(8000, np.float32)   # VAD segments keep a little silence around speech

# (espeak voice, Whisper code, sentence): >= 4.5 s each.
REQUESTS = (
    ("de", "de", "Bitte schalte das Licht im Wohnzimmer aus und stelle einen Wecker für sieben Uhr morgen früh."),
    ("fr", "fr", "Je voudrais écouter de la musique classique pendant que je prépare le dîner ce soir."),
    ("es", "es", "Por favor, enciende las luces de la cocina y pon una alarma para las siete de la mañana."),
)
MAX_WER = 0.6     # espeak's accent; measured 0.19-0.47 (tests print it)
FORCED = ("en", "de", "fr", "es", "it", "nl", "pt")

# Requests with names Whisper cannot know, and the vocabulary that names them.
NAME_REQUESTS = (
    "Turn on the lights in Anneliese's room.",
    "Call Siobhan.",
    "Play Sigur Rós in the kitchen.",
    "Send a message to Niamh.",
    "Remind me to call Doctor Nguyen tomorrow.",
)
VOCABULARY = ("Anneliese", "Siobhan", "Sigur Rós", "Niamh", "Nguyen")


def _speech(text: str, voice: str = "en-us") -> np.ndarray:
    """`text` by SVOX Pico's voice for a German, French or Spanish `voice` when pico2wave is
    installed (scripts/setup.sh --test does), else by espeak-ng (whose French scored WER 0.60-0.67
    here, at the test's bound)."""
    from voiced.engines.tts_pico import PicoEngine, pico_languages

    if voice in pico_languages() and voice != "en":
        pico = PicoEngine(voice)
        try:
            audio = np.concatenate([c.audio for c in pico.synthesize(text)])
        finally:
            pico.close()
        return np.concatenate([PAD, audio, PAD])
    return np.concatenate([PAD, espeak(text, voice).astype(np.float32) / 32768, PAD])


def _settings(base, **stt):
    return base.model_copy(update={"stt": base.stt.model_copy(update=stt)})


def _engine(kind: str, settings):
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT
    from voiced.engines.stt_whisper import WhisperSTT

    engine = (FasterWhisperSTT if kind == "faster-whisper" else WhisperSTT)(settings.stt, settings)
    engine.load()
    return engine


@pytest.fixture(scope="module", params=["faster-whisper", "transformers"])
def kind_settings(request, fast_whisper_settings):
    return request.param, fast_whisper_settings


@pytest.fixture(scope="module")
def auto_engine(kind_settings):
    kind, base = kind_settings
    return kind, _engine(kind, _settings(base, language=("auto",)))


def _corpus() -> list[tuple[str, np.ndarray]]:
    out = []
    for r in json.loads((SPEECH / "manifest.json").read_text())["recordings"]:
        audio, rate = sf.read(SPEECH / r["file"], dtype="float32")
        assert rate == 16_000
        out.append((r["transcript"], audio))
    return out


# ---------------------------------------------------------------------------- no model

@pytest.mark.parametrize("language,text", [
    ("de", "Untertitel im Auftrag des ZDF, 2017"), ("de", "Untertitel im Auftrag des ZDF für funk, 2017"),
    ("de", "Vielen Dank fürs Zuschauen!"), ("de", "Vielen Dank für's Zuschauen."), ("de", "Untertitel der Amara.org-Community"),
    ("fr", "Sous-titrage ST' 501"), ("fr", "Merci d'avoir regardé cette vidéo !"), ("fr", "Sous-titrage Société Radio-Canada"),
    ("fr", "Sous-titres réalisés par la communauté d'Amara.org"),
    ("es", "Subtítulos realizados por la comunidad de Amara.org"), ("es", "¡Gracias por ver!"), ("es", "Gracias por ver el video."),
    ("it", "Sottotitoli creati dalla comunità Amara.org"), ("it", "Sottotitoli e revisione a cura di QTSS"),
    ("it", "Grazie per la visione!"),
    ("nl", "Ondertiteling door de Amara.org gemeenschap"), ("nl", "Bedankt voor het kijken!"), ("nl", "MUZIEK."),
    ("pt", "Legendas pela comunidade Amara.org"), ("pt", "Obrigado por assistir!"), ("pt", "Obrigada."),
    ("es", "y"), ("it", "e"),
    ("ja", "ご視聴ありがとうございました"), ("ko", "시청해주셔서 감사합니다"),
    ("", "Vielen Dank fürs Zuschauen!"),          # language unknown: every language's phrases
    ("de", "Thank you for watching!"),           # English sign-offs leak into every language
])
def test_phantom_phrases_are_rejected_in_their_language(language, text):
    from voiced.engines.hallucination import filtered_transcript

    result = filtered_transcript(text, 0.1, 2.0, 0.1, language, 0.9)
    assert result.text == "" and result.rejected, (language, text)
    assert result.language == language and result.raw_text == text


@pytest.mark.parametrize("language,text", [
    ("de", "Mach das Licht im Wohnzimmer an."), ("de", "Untertitel einschalten."),
    ("de", "Vielen Dank fürs Zuschauen, aber jetzt mach bitte das Licht aus."),
    ("fr", "Allume la lumière de la cuisine."), ("fr", "Merci, éteins la radio."),
    ("es", "Enciende las luces de la cocina."), ("es", "Gracias por ver el partido conmigo."),
    ("it", "Accendi la luce in cucina."), ("nl", "Zet de muziek aan."), ("pt", "Acende a luz da sala."),
    ("fr", "Danke"),                              # German phrases are not French ones
])
def test_real_requests_are_kept(language, text):
    from voiced.engines.hallucination import filtered_transcript

    result = filtered_transcript(text, 0.1, 2.0, 0.1, language, 0.9)
    assert result.text == text and result.rejected is None


def test_prompt_echo_is_rejected_but_a_request_with_its_names_is_kept():
    from voiced.engines.hallucination import filtered_transcript

    prompt = "Anneliese, Siobhan, Sigur Rós, Hey Jarvis."
    assert filtered_transcript("Siobhan, Sigur Rós.", 0.1, 2.0, 0.1, "en", None, prompt).rejected
    assert filtered_transcript("Anneliese, Siobhan, Sigur Rós, Hey Jarvis.", 0.1, 2.0, 0.1, "en", None, prompt).rejected
    kept = filtered_transcript("Call Siobhan.", 0.1, 2.0, 0.1, "en", None, prompt)
    assert kept.text == "Call Siobhan." and kept.language == "en"


def test_bias_prompt_is_the_vocabulary_and_wake_word_within_the_token_budget():
    from voiced.config import Settings
    from voiced.engines.vocabulary import MAX_PROMPT_TOKENS, bias_prompt, estimated_tokens, spoken_wake_word

    assert bias_prompt(Settings()) == ""                               # no vocabulary: no bias
    prompt = bias_prompt(Settings(stt={"vocabulary": ["Anneliese", "Siobhan", "Sigur Rós"]}))
    assert prompt == "Anneliese, Siobhan, Sigur Rós, Hey Jarvis."
    many = bias_prompt(Settings(stt={"vocabulary": [f"Name{i}xyz" for i in range(40)]}))
    assert many.startswith("Name0xyz, Name1xyz") and estimated_tokens(" " + many) <= MAX_PROMPT_TOKENS
    counted = bias_prompt(Settings(stt={"vocabulary": ["Anneliese", "Siobhan"]}), lambda text: len(text.split()))
    assert counted == "Anneliese, Siobhan, Hey Jarvis."
    assert bias_prompt(Settings(stt={"vocabulary": ["a b c"]}), lambda text: 100) == ""
    assert spoken_wake_word("/opt/words/alexa_v0.1.onnx") == "Alexa"
    assert spoken_wake_word("hey_jarvis_v0.1") == "Hey Jarvis"


def test_wyoming_describe_lists_the_languages_truly_offered():
    from voiced.engines.base import EngineInfo
    from voiced.wyoming.info import describe, stt_languages

    class Multilingual:
        languages = ("en", "de", "fr", "es")

    assert stt_languages(("en",), Multilingual()) == ["en"]
    assert stt_languages(("de",), Multilingual()) == ["de"]
    assert stt_languages(("en", "de", "fr"), Multilingual()) == ["en", "de", "fr"]
    assert stt_languages(("auto",), Multilingual()) == ["en", "de", "fr", "es"]
    assert stt_languages(("auto",), None) == ["en"]
    assert stt_languages("en-US") == ["en"]
    info = describe(EngineInfo("faster-whisper", "cpu", "base"), None, (), ["en", "de"])
    assert info.asr[0].models[0].languages == ["en", "de"]
    assert describe(EngineInfo("whisper", "cpu", "base"), None, (), "en").asr[0].models[0].languages == ["en"]


# ---------------------------------------------------------------------------- real Whisper

@pytest.mark.parametrize("voice,code,sentence", REQUESTS, ids=[r[1] for r in REQUESTS])
def test_detects_the_spoken_language(auto_engine, voice, code, sentence):
    kind, engine = auto_engine
    result = engine.transcribe(_speech(sentence, voice))
    score = wer(sentence, result.text)
    print(f"\n{kind} auto {code}: detected {result.language} p={result.language_probability:.2f} "
          f"WER {score:.2f} in {result.elapsed_s:.2f} s: {result.text!r}")
    assert result.rejected is None, result
    assert result.language == code, result
    assert 0 < result.language_probability <= 1
    assert score <= MAX_WER, result.text


def test_english_is_detected_and_transcribed(auto_engine):
    kind, engine = auto_engine
    for sentence in SENTENCES:
        result = engine.transcribe(_speech(sentence))
        print(f"\n{kind} auto en: p={result.language_probability:.2f} WER {wer(sentence, result.text):.2f}: {result.text!r}")
        assert result.language == "en" and result.language_probability > 0.5, result
        assert wer(sentence, result.text) <= 0.2, result.text


def test_detection_among_a_list_picks_german(kind_settings):
    kind, base = kind_settings
    engine = _engine(kind, _settings(base, language=("en", "de")))
    assert any("among en, de" in note for note in engine.info.notes)
    voice, code, sentence = REQUESTS[0]
    result = engine.transcribe(_speech(sentence, voice))
    print(f"\n{kind} [en, de]: {result.language} p={result.language_probability:.2f} "
          f"WER {wer(sentence, result.text):.2f}: {result.text!r}")
    assert result.language == "de" and result.rejected is None
    # French speech, but only English or German may be chosen.
    result = engine.transcribe(_speech(REQUESTS[1][2], REQUESTS[1][0]))
    print(f"{kind} [en, de] on French: {result.language} p={result.language_probability:.2f}: {result.text!r}")
    assert result.language in ("en", "de")


def test_forced_language_is_reported_without_a_probability(kind_settings):
    kind, base = kind_settings
    engine = _engine(kind, _settings(base, language=("de",)))
    result = engine.transcribe(_speech(REQUESTS[0][2], "de"))
    assert result.language == "de" and result.language_probability is None
    assert wer(REQUESTS[0][2], result.text) <= MAX_WER, result.text


def test_one_second_clip(auto_engine):
    """What a 1 s request gives with detection: printed; it must not fail or hang."""
    kind, engine = auto_engine
    for voice, text in (("de", "Licht aus."), ("fr", "Bonjour."), ("es", "Hola."), ("en-us", "Lights off.")):
        audio = espeak(text, voice).astype(np.float32) / 32768
        clip = np.zeros(16_000, np.float32)
        clip[:min(audio.size, clip.size)] = audio[:clip.size]
        result = engine.transcribe(clip)
        print(f"\n{kind} 1 s {voice} {text!r}: {result.language} p={result.language_probability} "
              f"no-speech {result.no_speech_prob} -> {result.text!r} ({result.rejected})")
        assert result.audio_s == pytest.approx(1.0)
        assert result.language and (result.language_probability is None or 0 < result.language_probability <= 1)


@pytest.mark.parametrize("language", ("auto",) + FORCED)
def test_no_phantom_transcript_on_non_speech(kind_settings, language):
    kind, base = kind_settings
    engine = _engine(kind, _settings(base, language=(language,)))
    for name, audio in non_speech():
        result = engine.transcribe(audio)
        assert result.text == "", f"{kind} {language} {name}: {result}"
        assert result.rejected, name
        assert result.language == (language if language != "auto" else result.language) and result.language


def _wers(engine, cases) -> list[float]:
    return [wer(reference, engine.transcribe(audio).text) for reference, audio in cases]


def test_vocabulary_bias_measured(kind_settings):
    """Names Whisper cannot know, with and without [stt] vocabulary; the plain English requests
    (espeak SENTENCES and the recorded corpus) must not get worse with it."""
    kind, base = kind_settings
    names = [(text, _speech(text)) for text in NAME_REQUESTS]
    plain = [(text, _speech(text)) for text in SENTENCES] + _corpus()
    results = {}
    for label, vocabulary in (("without", ()), ("with", VOCABULARY)):
        engine = _engine(kind, _settings(base, language=("en",), vocabulary=vocabulary))
        started = time.monotonic()
        results[label] = (_wers(engine, names), _wers(engine, plain), time.monotonic() - started,
                          getattr(engine, "_prompt", ""))
    (n0, p0, t0, _), (n1, p1, t1, prompt) = results["without"], results["with"]
    print(f"\n{kind} vocabulary prompt {prompt!r}")
    print(f"{kind} names WER: without {np.mean(n0):.3f} {[round(x, 2) for x in n0]}; "
          f"with {np.mean(n1):.3f} {[round(x, 2) for x in n1]}")
    print(f"{kind} plain English WER: without {np.mean(p0):.3f}; with {np.mean(p1):.3f} "
          f"({len(plain)} requests; {t0:.1f} s vs {t1:.1f} s in all)")
    changed = [(reference, round(before, 2), round(after, 2))
               for (reference, _), before, after in zip(plain, p0, p1) if before != after]
    print(f"{kind} plain English requests whose WER changed (reference, without, with): {changed}")
    assert prompt
    # Any prompt changes Whisper's decoding a little: one request may lose a word while another
    # gains one (measured: every prompt wording tried turns "ill-disposed" into "old supposed"
    # and fixes "four of clubs"), so the bound is on the whole set, not on each request.
    assert np.mean(p1) <= np.mean(p0) + 1e-9, f"the vocabulary made plain English worse: {changed}"
    # Measured: faster-whisper 0.65 -> 0.36 on the names; transformers 0.47 -> 0.47 (it fixes
    # Anneliese, Sigur Rós and Niamh less often, and "Play" once became the wake word's "Hey").
    assert np.mean(n1) <= np.mean(n0), "the vocabulary made the names worse"
    if kind == "faster-whisper":
        assert np.mean(n1) < np.mean(n0) - 0.1, "the vocabulary did not help the names"


def _piper(engine, text: str) -> np.ndarray:
    from voiced.audio.dsp import resample

    chunks = list(engine.synthesize(text))
    return resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, 16_000).astype(np.float32)


def test_expected_phrases_help_a_shouted_stop(kind_settings, piper_voice):
    """While a timer rings the listener passes the cancel phrases as `expect`: a shouted "Stop!"
    (Piper's, which Whisper base often hears as "Start.") is then heard as stop, at any start
    offset, and words that are not a stop phrase are not turned into one."""
    from voiced.core.conversation import asks_to_stop
    from voiced.engines.vocabulary import phrases_prompt

    kind, base = kind_settings
    engine = _engine(kind, _settings(base, language=("en",)))
    phrases = base.conversation.cancel_phrases
    expect = phrases_prompt(phrases)
    rng = np.random.default_rng(7)

    def heard(text: str, **kw) -> list[str]:
        speech = _piper(piper_voice, text)
        out = []
        for offset in range(0, 3200, 160):      # where the VAD cut starts moves the frames
            lead = rng.normal(0, 1e-4, offset).astype(np.float32)
            out.append(engine.transcribe(np.concatenate([lead, speech, PAD]), **kw).text)
        return out

    plain, hinted = heard("Stop!"), heard("Stop!", expect=expect)
    others = {text: heard(text, expect=expect) for text in ("Start.", "What time is it?")}
    rate = lambda texts: sum(asks_to_stop(t, phrases) for t in texts) / len(texts)   # noqa: E731
    print(f"\n{kind} 'Stop!' heard as stop: without the hint {rate(plain):.0%} {sorted(set(plain))}; "
          f"with {rate(hinted):.0%} {sorted(set(hinted))}; others with the hint: "
          f"{ {t: sorted(set(h)) for t, h in others.items()} }")
    # Measured: transformers 75 % -> 100 %; faster-whisper 100 % -> 95-100 % (one decode came
    # back empty with the prompt in a fresh-clone run).
    assert rate(hinted) >= 0.9
    assert rate(hinted) >= rate(plain) - 0.1
    for text, texts in others.items():
        assert rate(texts) == 0, f"{text!r} was heard as a stop with the hint: {texts}"


def test_asks_to_stop_takes_short_commands_with_a_cancel_phrase():
    from voiced.core.conversation import asks_to_stop
    from voiced.engines.vocabulary import phrases_prompt

    phrases = ("never mind", "cancel", "stop")
    assert phrases_prompt(phrases) == "Never mind, cancel, stop."
    assert phrases_prompt(()) == ""
    for text in ("Stop.", "Stop, stop!", "OK, stop it.", "Stop the timer.", "Never mind."):
        assert asks_to_stop(text, phrases), text
    for text in ("Start.", "", "Stopwatch.", "Never.", "I said we should stop by the shop later today."):
        assert not asks_to_stop(text, phrases), text


def test_a_request_can_name_its_language(kind_settings):
    """A caller that knows the request's language (a Wyoming client's transcribe event) gets it
    decoded in that language, whatever [stt] language forces; a code the model lacks is ignored."""
    kind, base = kind_settings
    engine = _engine(kind, _settings(base, language=("en",)))
    voice, code, sentence = REQUESTS[0]
    audio = _speech(sentence, voice)
    asked = engine.transcribe(audio, language=code)
    plain = engine.transcribe(audio)
    unknown = engine.transcribe(audio, language="xx")
    print(f"\n{kind}: asked {code}: {asked.language} {asked.text!r}; not asked: {plain.language} {plain.text!r}")
    assert asked.language == code and wer(sentence, asked.text) <= MAX_WER
    assert plain.language == "en" and unknown.language == "en"
    assert wer(sentence, plain.text) > wer(sentence, asked.text)


@pytest.mark.parametrize("language", ["fr", "es"])
def test_real_french_and_spanish_speech_is_understood_and_its_language_detected(fast_whisper_settings, language):
    """Real human speech (Asterisk's prompts, read by professional speakers; see
    tests/support/asterisk_prompts.py): Whisper base with the language forced, and detection on
    the same 20 sentences with "auto" (any of ~99 languages) and among en, de, fr, es."""
    from tests.support import asterisk_prompts
    from voiced.bench.accuracy import corpus_wer

    why = asterisk_prompts.missing(language)
    if why:
        pytest.skip(f"no real {language} speech here: {why}")
    clips = asterisk_prompts.prompts(language, count=20)
    assert len(clips) == 20
    forced = _engine("faster-whisper", _settings(fast_whisper_settings, language=(language,)))
    heard = [(text, forced.transcribe(np.concatenate([PAD, audio, PAD]))) for _, text, audio in clips]
    accuracy = {}
    for mode, codes in (("auto", ("auto",)), ("among en, de, fr, es", ("en", "de", "fr", "es"))):
        engine = _engine("faster-whisper", _settings(fast_whisper_settings, language=codes))
        got = [(name, engine.transcribe(np.concatenate([PAD, audio, PAD]))) for name, _, audio in clips]
        accuracy[mode] = sum(t.language == language for _, t in got) / len(got)
        wrong = [(n, t.language, round(t.language_probability or 0, 2)) for n, t in got if t.language != language]
        print(f"\n{language} detection {mode}: {100 * accuracy[mode]:.0f} % (wrong: {wrong})")
    lengths = [audio.size / 16_000 for _, _, audio in clips]
    wer_all = corpus_wer([(text, t.text) for text, t in heard])
    print(f"{language}: {len(clips)} sentences of {min(lengths):.1f}-{max(lengths):.1f} s; WER {100 * wer_all:.1f} %")
    for text, t in heard:
        if not t.text:
            print(f"  dropped: {text!r}: {t.rejected}")
    # Measured: fr WER 17 %, detection auto 100 %, list 100 %; es WER 24 %, auto 80 % (as pl, pt,
    # la, ca at p 0.21-0.57), list 100 %. The transcripts' own slips count as errors.
    assert accuracy["among en, de, fr, es"] >= 0.95
    assert accuracy["auto"] >= 0.75
    assert wer_all <= 0.35
