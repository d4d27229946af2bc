"""Speech-to-text by a remote Wyoming ASR service (another voiced, wyoming-faster-whisper):
Transcribe, AudioStart, AudioChunk..., AudioStop -> Transcript."""
from __future__ import annotations

import time

import numpy as np
from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyomingTranscript
from wyoming.audio import AudioStart, AudioStop

from ..config import Settings
from ..wyoming.audio import audio_chunks
from ..wyoming.client import WyomingRequests
from .base import STT_RATE, EngineInfo, Transcript, mono_audio
from .hallucination import filtered_transcript


class WyomingSTT:
    name = "wyoming"

    def __init__(self, settings: Settings):
        self.language = settings.stt.forced_language or ""
        self.remote = WyomingRequests(settings.stt.wyoming_uri, settings.wyoming)
        self.info: EngineInfo | None = None
        self.languages: tuple[str, ...] = ()     # what the remote's models offer

    def load(self) -> EngineInfo:
        """Ask the remote what it runs (raises RemoteUnavailable when it is down)."""
        program = self.remote.program("asr", "speech-to-text")
        models = [m.name for m in program.models if m.installed]
        self.languages = tuple(dict.fromkeys(c for m in program.models if m.installed for c in (m.languages or ())))
        self.info = EngineInfo(self.name, "remote", f"{program.name}: {', '.join(models) or '?'}",
                               source=self.remote.uri)
        return self.info

    def warmup(self) -> None:
        """Nothing to warm here; the remote warms its own model."""

    def transcribe(self, audio: np.ndarray, expect: str = "", language: str = "") -> Transcript:
        """`expect` is not sent: Wyoming's transcribe event has no prompt."""
        audio = mono_audio(audio)
        started, audio_s = time.monotonic(), audio.size / STT_RATE
        events = [Transcribe(language=language or self.language or None).event(),
                  AudioStart(rate=STT_RATE, width=2, channels=1).event(),
                  *(chunk.event() for chunk in audio_chunks(audio, STT_RATE)),
                  AudioStop().event()]
        answers = self.remote.exchange(events, lambda e: WyomingTranscript.is_type(e.type))
        answer = WyomingTranscript.from_event(answers[-1])
        raw, language = answer.text.strip(), (answer.language or self.language or "").lower()
        elapsed = time.monotonic() - started
        return filtered_transcript(raw, elapsed, audio_s, None, language)   # the local engines' filter
