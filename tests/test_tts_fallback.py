"""The CPU fallback voices: Piper (in its worker process) and espeak-ng.

Intelligibility is checked the honest way: the real Whisper transcribes what was spoken.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from scipy.signal import resample_poly

from tests.fixtures_stt import stt_settings, wer, whisper_stt  # noqa: F401  (fixtures)
from voiced.config import TtsSettings
from voiced.engines.base import FatalEngineError, TextToSpeech
from voiced.engines.tts_espeak import EspeakEngine
from voiced.engines.tts_piper import PiperEngine, piper_voice_paths

pytest.importorskip("piper", reason="piper-tts is not installed (pip install piper-tts)")

REPLY = ("The quick brown fox jumps over the lazy dog. "
         "Please turn on the kitchen lights before dinner.")


def to_16k(chunks) -> np.ndarray:
    audio = np.concatenate([c.audio for c in chunks])
    rate = chunks[0].sample_rate
    g = np.gcd(rate, 16_000)
    return resample_poly(audio, 16_000 // g, rate // g).astype(np.float32)


def check_chunk(chunk, rate):
    assert chunk.sample_rate == rate
    assert chunk.audio.dtype == np.float32 and chunk.audio.ndim == 1
    assert np.isfinite(chunk.audio).all() and np.abs(chunk.audio).max() <= 1.0
    assert np.sqrt(np.mean(chunk.audio ** 2)) > 0.01, "near-silent chunk"
    # ~12-20 characters a second of speech: the length must fit the text
    seconds = chunk.audio.size / rate
    assert len(chunk.text) / 30 < seconds < len(chunk.text) / 5 + 1, (chunk.text, seconds)


@pytest.fixture(scope="module")
def piper():
    engine = PiperEngine(TtsSettings(engine="piper"))
    started = time.monotonic()
    info = engine.load()
    print(f"\npiper load (worker start + voice): {time.monotonic() - started:.2f} s; {info}")
    yield engine
    engine.close()


def timed_reply(engine, text):
    started = time.monotonic()
    gen = engine.synthesize(text)
    first = next(gen)
    to_first = time.monotonic() - started
    chunks = [first] + list(gen)
    return chunks, to_first, time.monotonic() - started


def test_piper_speech_is_intelligible(piper, whisper_stt):  # noqa: F811
    assert isinstance(piper, TextToSpeech)
    piper.warmup()
    chunks, to_first, total = timed_reply(piper, REPLY)
    assert [c.text for c in chunks] == ["The quick brown fox jumps over the lazy dog.",
                                        "Please turn on the kitchen lights before dinner."]
    for chunk in chunks:
        check_chunk(chunk, piper.sample_rate)
    assert piper.sample_rate == 22_050
    audio_s = sum(c.audio.size for c in chunks) / piper.sample_rate
    heard = whisper_stt.transcribe(to_16k(chunks))
    error = wer(REPLY, heard.text)
    print(f"\npiper: first sentence in {to_first * 1000:.0f} ms, {audio_s:.2f} s of audio in "
          f"{total:.2f} s (RTF {total / audio_s:.3f}); whisper heard {heard.text!r} (WER {error:.2f})")
    assert error <= 0.2, heard
    assert to_first < 2.0                  # ~0.1 s on an idle 2-core CPU; generous for CI load


def test_worker_restarts_after_being_killed(piper, whisper_stt):  # noqa: F811
    list(piper.synthesize("Warm."))
    old_pid, restarts = piper.worker_pid, piper.restarts
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while piper.worker_pid is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert piper.worker_pid is None, "killed worker still looks alive"

    chunk, = piper.synthesize("Open the garage door.")
    check_chunk(chunk, piper.sample_rate)
    assert piper.worker_pid not in (None, old_pid) and piper.restarts == restarts + 1
    assert wer("Open the garage door.", whisper_stt.transcribe(to_16k([chunk])).text) <= 0.25


def test_worker_killed_mid_reply_still_speaks_every_sentence(piper):
    sentences = ["First sentence is here.", "Second one follows now.", "Third and last."]
    restarts = piper.restarts
    gen = piper.synthesize(" ".join(sentences))
    got = [next(gen)]
    os.kill(piper.worker_pid, signal.SIGKILL)   # it is blocked writing sentence 2 (pipe full)
    got += list(gen)
    assert [c.text for c in got] == sentences
    assert piper.restarts == restarts + 1
    for chunk in got:
        check_chunk(chunk, piper.sample_rate)


def test_abandoned_reply_does_not_leak_into_the_next(piper, whisper_stt):  # noqa: F811
    gen = piper.synthesize("One two three. Four five six. Seven eight nine. Ten eleven twelve. " * 4)
    next(gen)
    started = time.monotonic()
    gen.close()                            # barge-in: the listener stopped this reply
    closed_in = time.monotonic() - started
    pid = piper.worker_pid
    print(f"\npiper: abandoning a 16-sentence reply took {closed_in * 1000:.0f} ms")
    assert closed_in < 1.0                 # cancelled after the current sentence, not drained
    chunk, = piper.synthesize("Good morning.")
    assert piper.worker_pid == pid         # drained, not restarted
    heard = whisper_stt.transcribe(to_16k([chunk])).text
    assert wer("Good morning.", heard) <= 0.5, heard


def test_piper_voice_paths(tmp_path):
    model, config = piper_voice_paths("joe-us")
    assert model.suffix == ".onnx" and model.is_file() and config.is_file()
    assert piper_voice_paths(str(model)) == (model, config)      # a path to a .onnx works too
    with pytest.raises(FatalEngineError, match="not found"):
        piper_voice_paths(str(tmp_path / "missing.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    bad.with_suffix(".onnx.json").write_bytes(config.read_bytes())
    with pytest.raises(FatalEngineError, match="piper worker failed"):
        PiperEngine(TtsSettings(piper_voice=str(bad))).load()


def test_empty_reply_yields_nothing(piper):
    assert list(piper.synthesize("🎉 ```code```")) == []


def test_espeak_speaks_each_sentence(whisper_stt):  # noqa: F811
    engine = EspeakEngine(TtsSettings(engine="espeak"))
    info = engine.load()
    assert isinstance(engine, TextToSpeech) and info.name == "espeak"
    started = time.monotonic()
    chunks = list(engine.synthesize(REPLY))
    elapsed = time.monotonic() - started
    assert [c.text for c in chunks] == ["The quick brown fox jumps over the lazy dog.",
                                        "Please turn on the kitchen lights before dinner."]
    for chunk in chunks:
        check_chunk(chunk, engine.sample_rate)
    heard = whisper_stt.transcribe(to_16k(chunks)).text
    print(f"\nespeak: {elapsed * 1000:.0f} ms for 2 sentences; whisper heard {heard!r}")
    assert wer(REPLY, heard) <= 0.35, heard


def test_espeak_unknown_voice_is_fatal():
    with pytest.raises(FatalEngineError, match="voice"):
        EspeakEngine(TtsSettings(espeak_voice="xx-no-such-voice")).load()
