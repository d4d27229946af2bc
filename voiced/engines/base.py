"""The contract every speech engine follows, and the errors recovery acts on.

Audio currency: float32 numpy arrays in [-1, 1], mono. STT input is always 16 kHz;
TTS output is at the engine's own `sample_rate` (playback resamples to the device).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

STT_RATE = 16_000


class EngineError(Exception):
    """Base class: an engine could not do what it was asked."""


class TransientEngineError(EngineError):
    """Worth retrying as is (a timeout, a busy device)."""


class OutOfMemory(EngineError):
    """The device ran out of memory: free caches and retry, or move to CPU."""


class FatalEngineError(EngineError):
    """The engine cannot work here (missing weights, broken device): use a fallback."""


class MissingDependency(FatalEngineError):
    """An optional package is not installed; the message names what to install."""


@dataclass(frozen=True)
class Transcript:
    text: str                      # "" when rejected (silence, hallucination)
    elapsed_s: float               # wall time spent transcribing
    audio_s: float                 # length of the audio given
    no_speech_prob: float | None = None
    rejected: str | None = None    # why the text was dropped, for the log
    raw_text: str = ""             # what the model said before filtering
    language: str = ""             # Whisper's code ("en", "de"...): forced or detected; "" = unknown
    language_probability: float | None = None   # Whisper's probability of `language`; None = forced


@dataclass(frozen=True)
class SpeechChunk:
    audio: np.ndarray              # float32 mono
    sample_rate: int
    text: str = ""                 # the sentence this chunk speaks


@dataclass(frozen=True)
class VoiceStyle:
    """How one reply is spoken. Every engine honours speed and pitch; only Chatterbox can
    clone `clip` and use `exaggeration` (its emotion control)."""
    speed: float = 1.0             # times the natural rate, tempo only
    pitch: float = 0.0             # semitones, pitch only
    voice: str = ""                # the voice's name, for logs ("" = the configured voice)
    clip: Path | None = None       # reference clip to clone; None = tts.voice / built-in
    cache_dir: Path | None = None  # where the clip's conditionals are kept
    exaggeration: float | None = None   # None = tts.exaggeration


PLAIN = VoiceStyle()


@dataclass(frozen=True)
class EngineInfo:
    name: str                      # "whisper", "chatterbox", "piper"...
    device: str                    # "cuda", "cpu", "remote"...
    model: str                     # what is loaded, e.g. "openai/whisper-base.en" or a path
    source: str = ""               # where the weights came from (hub, package, local dir)
    notes: tuple[str, ...] = field(default_factory=tuple)


def mono_audio(audio) -> np.ndarray:
    """STT input as float32 1-D; a ValueError naming the shape otherwise."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    return audio


@runtime_checkable
class SpeechToText(Protocol):
    def load(self) -> EngineInfo: ...
    def warmup(self) -> None: ...
    def transcribe(self, audio: np.ndarray, expect: str = "", language: str = "") -> Transcript: ...


@runtime_checkable
class TextToSpeech(Protocol):
    sample_rate: int

    def load(self) -> EngineInfo: ...
    def warmup(self) -> None: ...
    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        """Yield audio sentence by sentence, so playback can start on the first."""
        ...


def request_language(engine: str, asked: str | None, languages, multilingual: bool, forced: str | None) -> str | None:
    """The language a request is decoded in without detection: the one its caller names (a
    Wyoming client's transcribe event) if the model knows it, else [stt]'s forced one (None:
    detect)."""
    if asked and multilingual and asked in languages:
        return asked
    if asked and asked not in languages:
        logging.getLogger("voiced.engines").info(
            "%s: a request asked for language %r, which this model does not have", engine, asked)
    return forced
