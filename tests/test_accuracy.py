"""The accuracy set (voiced/bench/accuracy.py, `voiced bench --parts accuracy`): a small subset
is built from scratch, its manifest checked, and Whisper's file-path WER on the clean English
voices must stay at or under 10 %; Pico's German, French and Spanish are understood and their language
detected. The whole set and the live path: `voiced bench --parts accuracy`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from voiced.bench import accuracy as acc

VOICES = ["espeak en-us+m3 s175", "piper joe-us"]
CONDITIONS = ("clean", "pink 10 dB", "babble 10 dB")


def test_words_and_wer_normalisation():
    assert acc.norm_words("Set a timer for ten minutes.") == acc.norm_words("Set a timer for 10 minutes")
    assert acc.norm_words("Stell einen Timer auf zehn Minuten.") == ["stell", "einen", "timer", "auf", "10", "minuten"]
    assert acc.edits("Quelle heure est-il ?", "Quelle heure est il") == (0, 4)
    assert acc.edits("Turn off the lights in the kitchen.", "Turn off the lights invocation.") == (3, 7)
    assert acc.corpus_wer([("a b c d", "a b c d"), ("a b", "")]) == pytest.approx(2 / 6, abs=1e-4)
    assert acc.edits("Pon algo de música en el salón.", "Pón algo de musica en el salon") == (0, 7)
    assert acc.edits("Éteins la lumière.", "Éteint la lumière.") == (1, 3)


def test_parse_heard_from_the_turn_line():
    line = ("turn 3 (wake: hey_jarvis 0.93) answered: heard \"What's the time?\", said 'ok'; "
            "stt=0.31s voice_to_voice=0.60s")
    assert acc.parse_heard(line) == "What's the time?"
    assert acc.parse_heard("turn 4 (wake: hey_jarvis 0.8) no speech: heard '', said ''; ") == ""
    assert acc.parse_heard("listening for hey_jarvis") is None


def test_every_language_has_the_same_requests():
    assert set(acc.REQUESTS) == {"en", "de", "fr", "es"}
    assert all(len(r) == 8 for r in acc.REQUESTS.values())
    assert {v[0] for v in acc.VOICES} == set(acc.REQUESTS)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, settings):
    out = tmp_path_factory.mktemp("accuracy")
    return out, acc.build_set(out, settings, languages=("en",), voices=VOICES, conditions=CONDITIONS, requests=8)


def test_manifest_is_complete_and_the_noise_is_at_its_snr(small_set, settings):
    import soundfile as sf

    out, manifest = small_set
    files = manifest["files"]
    assert len(files) == len(VOICES) * 8 * len(CONDITIONS)
    assert json.loads((out / "manifest.json").read_text())["files"] == files
    seen = set()
    for f in files:
        assert set(f) >= {"file", "text", "language", "voice", "condition", "speech_s"}
        assert f["text"] == acc.REQUESTS["en"][f["request"]] and f["language"] == "en"
        info = sf.info(out / f["file"])
        assert info.samplerate == 16_000 and info.channels == 1
        assert info.duration == pytest.approx(f["length_s"], abs=0.01)
        assert 0.5 <= f["speech_s"] <= 5.0, f
        seen.add((f["voice"], f["request"], f["condition"]))
    assert len(seen) == len(files)                 # every voice x request x condition, once
    # The noise is mixed at the condition's SNR over the speech's active span.
    clean = {(f["voice"], f["request"]): acc.load_audio(out, f) for f in files if f["condition"] == "clean"}
    for f in files:
        if f["condition"] == "clean":
            continue
        c = clean[(f["voice"], f["request"])]
        noise = acc.load_audio(out, f) - c
        a, b = acc.speech_bounds(c)
        span = slice(int(a * 16_000), int(b * 16_000))
        snr = 10 * np.log10(np.mean(c[span].astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(10.0, abs=0.5), f["file"]
    # The same specification again: the cached set is reused, not rebuilt.
    again = acc.build_set(out, settings, languages=("en",), voices=VOICES, conditions=CONDITIONS, requests=8)
    assert again["built"] == manifest["built"]


def test_file_path_english_wer_on_clean_synthetic_voices(small_set, fast_whisper_settings):
    out, manifest = small_set
    clean = [f for f in manifest["files"] if f["condition"] == "clean"]
    engine = acc.stt_for(fast_whisper_settings, "en")
    heard = acc.transcribe_all(out, clean, engine)
    voices = acc.judge_voices(clean, heard)
    table = acc.wer_table(clean, heard)
    print()
    for k, v in voices.items():
        print(f"{k}: clean WER {100 * v['clean_wer']:.1f} %")
    for f in clean:
        print(f"  {f['voice']:<22} {f['text']!r} -> {heard[f['file']]!r}")
    assert all(v["intelligible"] for v in voices.values()), voices
    assert table["en"]["clean"]["wer"] <= 0.10, table


PICO = ["pico de-DE", "pico fr-FR", "pico es-ES"]


def test_german_french_and_spanish_are_understood_and_detected(tmp_path, fast_whisper_settings):
    """SVOX Pico's voices (installed by scripts/setup.sh --test): Whisper base on the file path
    per language, and language detection on requests of 1.5 s or more, with "auto" and with the
    set's four languages as the list to choose from."""
    import shutil

    if shutil.which("pico2wave") is None:
        pytest.skip("pico2wave is not installed (apt install libttspico-utils, Debian non-free)")
    manifest = acc.build_set(tmp_path, fast_whisper_settings, languages=("de", "fr", "es"), voices=PICO,
                             conditions=("clean",), requests=8)
    items = manifest["files"]
    heard = {}
    for lang in ("de", "fr", "es"):
        heard.update(acc.transcribe_all(tmp_path, [i for i in items if i["language"] == lang],
                                        acc.stt_for(fast_whisper_settings, lang)))
    voices = acc.judge_voices(items, heard)
    detection = acc._detection(fast_whisper_settings, tmp_path, [i for i in items if i["speech_s"] >= 1.5],
                               lambda it: True)
    print()
    for k, v in voices.items():
        print(f"{k}: clean WER {100 * v['clean_wer']:.1f} %")
    for mode, d in detection["modes"].items():
        print(f"detection {mode}: {100 * d['accuracy']:.0f} % of {d['n']}; wrong: {d['wrong']}")
    # Measured: de 2.0 %, fr 14.3 %, es 24.0 % (Whisper base: "¿Qué hora es?" -> "¿Qué orais?").
    assert all(v["clean_wer"] <= 0.35 for v in voices.values()), voices
    # Measured on these 16 requests: 100 % among the list, auto 15/16 (a Spanish request as Greek, p=0.48).
    assert detection["modes"]["among en, de, fr, es"]["accuracy"] >= 0.95, detection
    assert detection["modes"]["auto"]["accuracy"] >= 0.85, detection
