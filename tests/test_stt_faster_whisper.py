"""faster-whisper (CTranslate2) speech-to-text with the real weights: the kept CTranslate2 folder,
the engine on human speech, synthetic speech, silence and noise, and the factory's choice."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_stt import (
    JFK_REFERENCE,
    SENTENCES,
    assert_hears_request,
    assert_rejects,
    jfk_audio,
    non_speech,
    wer,
)
from voiced.config import Settings
from voiced.engines.base import FatalEngineError, OutOfMemory, SpeechToText
from voiced.models import whisper, whisper_fast

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- weights

def test_fetch_keeps_the_ct2_folder_with_provenance(fast_whisper_settings):
    directory = whisper_fast.kept_dir(fast_whisper_settings)
    manifest = json.loads((directory / whisper.MANIFEST).read_text())
    assert manifest["model_bin_sha256"] == whisper.MODEL_BIN_SHA256
    assert whisper.sha256_file(directory / "model.bin") == whisper.MODEL_BIN_SHA256
    assert "MIT" in (directory / "LICENSE").read_text()
    offline = Settings(models={"offline": True, "dir": fast_whisper_settings.models.dir})
    assert whisper_fast.resolve(offline)[0] == str(directory)
    started = time.monotonic()
    assert whisper_fast.fetch(fast_whisper_settings, lambda _msg: None).ready
    assert time.monotonic() - started < 2.0   # no download when already done


def test_a_folder_with_a_wrong_checksum_is_not_used(tmp_path, fast_whisper_settings):
    good = whisper_fast.kept_dir(fast_whisper_settings)
    bad = tmp_path / whisper.SUBDIR / whisper_fast.KEPT
    bad.mkdir(parents=True)
    for name in ("model.bin", "config.json"):
        (bad / name).symlink_to(good / name)
    (bad / whisper.MANIFEST).write_text(json.dumps({"model_bin_sha256": "0" * 64}))
    settings = Settings(models={"dir": str(tmp_path), "offline": True})
    row = whisper_fast.status(settings)
    assert not row.ready and "voiced models fetch" in row.detail
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT
    with pytest.raises(FatalEngineError, match="voiced models fetch"):
        FasterWhisperSTT(settings.stt, settings).load()


@pytest.mark.parametrize("model, name", [
    ("openai/whisper-base.en", "base.en"),
    ("openai/whisper-small", "small"),
    ("base.en", "base.en"),
    ("Systran/faster-whisper-tiny", "Systran/faster-whisper-tiny"),
    ("distil-whisper/distil-large-v3", None),     # a transformers repo: no CTranslate2 twin
])
def test_hub_names(model, name):
    assert whisper_fast.hub_name(model) == name


def test_a_transformers_folder_is_refused_with_the_fix(converted_whisper_dir):
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT

    settings = Settings(stt={"model": str(converted_whisper_dir)}, models={"offline": True})
    with pytest.raises(FatalEngineError, match='stt.engine = "transformers"'):
        FasterWhisperSTT(settings.stt, settings).load()


# ---------------------------------------------------------------- the engine

def test_engine_reports_what_it_loaded(faster_whisper_stt):
    info = faster_whisper_stt.info
    assert isinstance(faster_whisper_stt, SpeechToText)
    assert info.name == "faster-whisper" and info.device in ("cpu", "cuda")
    assert f"CTranslate2 {'int8' if info.device == 'cpu' else 'float16'}" in info.notes


def test_jfk_speech(faster_whisper_stt):
    result = faster_whisper_stt.transcribe(jfk_audio())
    assert result.rejected is None
    assert result.audio_s == pytest.approx(11.0, abs=0.1)
    assert result.no_speech_prob is not None and result.no_speech_prob < 0.3
    assert wer(JFK_REFERENCE, result.text) <= 0.05, result.text
    print(f"faster-whisper jfk 11 s: {result.elapsed_s:.2f} s")


@pytest.mark.parametrize("sentence", SENTENCES)
def test_synthetic_speech(faster_whisper_stt, sentence):
    assert_hears_request(faster_whisper_stt, sentence)


@pytest.mark.parametrize("name, audio", non_speech())
def test_non_speech_is_rejected(faster_whisper_stt, name, audio):
    assert_rejects(faster_whisper_stt, name, audio)


def test_long_audio_is_decoded_window_by_window(faster_whisper_stt):
    speech = jfk_audio()
    audio = np.concatenate([speech, np.zeros(10 * 16_000, np.float32), speech])   # 32 s
    result = faster_whisper_stt.transcribe(audio)
    assert result.rejected is None, result
    assert wer(f"{JFK_REFERENCE} {JFK_REFERENCE}", result.text) <= 0.15, result.text


def test_bad_input_shapes(faster_whisper_stt):
    with pytest.raises(ValueError, match="mono"):
        faster_whisper_stt.transcribe(np.zeros((2, 16_000), np.float32))
    empty = faster_whisper_stt.transcribe(np.zeros(0, np.float32))
    assert empty.text == "" and empty.rejected == "empty audio"


@pytest.mark.parametrize("message, kind", [
    ("CUDA failed with error out of memory", "oom"),
    ("CUDA failed with error an illegal memory access was encountered", "fatal_cuda"),
    ("some other failure", "other"),
])
def test_ctranslate2_errors_reach_recovery_as_its_kinds(message, kind):
    """A GPU fault cannot be caused on demand: CTranslate2's messages, mapped and classified."""
    from voiced.engines.stt_faster_whisper import _as_engine_error
    from voiced.recovery import classify

    try:
        try:
            raise RuntimeError(message)
        except RuntimeError as exc:
            raise _as_engine_error(exc) from exc
    except Exception as mapped:   # noqa: BLE001 - the mapped error is what is checked
        assert classify(mapped) == kind
        assert isinstance(mapped, OutOfMemory) == (kind == "oom")


# ---------------------------------------------------------------- choosing the engine

@pytest.mark.parametrize("engine, expected", [("faster-whisper", "faster-whisper"), ("auto", "faster-whisper"),
                                              ("transformers", "whisper")])
def test_factory_builds_the_configured_engine(fast_whisper_settings, engine, expected):
    from voiced.engines.factory import make_stt

    settings = fast_whisper_settings.model_copy(
        update={"stt": fast_whisper_settings.stt.model_copy(update={"engine": engine})})
    stt, info = make_stt(settings)
    assert info.name == expected and stt.info == info
    if engine == "auto":
        assert "stt.engine auto chose faster-whisper: its weights are prepared" in info.notes
    result = stt.transcribe(jfk_audio())
    assert wer(JFK_REFERENCE, result.text) <= 0.15, result.text


def test_auto_falls_back_to_transformers_and_says_why(converted_whisper_dir):
    from voiced.engines.factory import make_stt

    settings = Settings(stt={"engine": "auto", "model": str(converted_whisper_dir)}, models={"offline": True})
    _stt, info = make_stt(settings)
    assert info.name == "whisper"
    assert any(n.startswith("stt.engine auto chose transformers") and "not a CTranslate2 folder" in n
               for n in info.notes), info.notes


def test_a_short_request_is_encoded_in_a_short_window_with_the_same_words(fast_whisper_settings, faster_whisper_stt):
    """[stt] short_window_s: the same words as Whisper's 30 s window on real recordings and
    spoken requests, in a fraction of the time (printed: a benchmark, not a timed assertion)."""
    import soundfile as sf

    from tests.fixtures_audio import espeak
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT

    full_settings = fast_whisper_settings.model_copy(
        update={"stt": fast_whisper_settings.stt.model_copy(update={"short_window_s": 0.0})})
    full = _loaded_engine(FasterWhisperSTT(full_settings.stt, full_settings))
    speech = Path(__file__).parent / "data" / "speech"
    clips = [(r["file"], sf.read(speech / r["file"], dtype="float32")[0], r["transcript"])
             for r in json.loads((speech / "manifest.json").read_text())["recordings"]]
    for text in SENTENCES + ("What time is it?", "Set a timer for ten minutes.", "Turn off the lights in the kitchen."):
        pad = np.zeros(8000, np.float32)
        clips.append((f"espeak {text!r}", np.concatenate([pad, espeak(text).astype(np.float32) / 32768, pad]), text))
    short_s = full_s = 0.0
    for name, audio, reference in clips:
        t0 = time.perf_counter()
        short = faster_whisper_stt.transcribe(audio)
        t1 = time.perf_counter()
        whole = full.transcribe(audio)
        t2 = time.perf_counter()
        if len(audio) / 16_000 < fast_whisper_settings.stt.short_window_s:
            short_s, full_s = short_s + t1 - t0, full_s + t2 - t1
        print(f"{name[:40]:40s} short {t1 - t0:.2f} s {short.text!r} | 30 s {t2 - t1:.2f} s {whole.text!r}")
        assert wer(reference, short.text) <= wer(reference, whole.text) + 0.05, (name, short.text, whole.text)
    print(f"short window: {short_s:.2f} s in all, 30 s window: {full_s:.2f} s ({full_s / short_s:.1f}x)")
    assert short_s < full_s


def _loaded_engine(engine):
    engine.load()
    return engine
