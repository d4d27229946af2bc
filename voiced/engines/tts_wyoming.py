"""Text-to-speech by a remote Wyoming TTS service (another voiced, wyoming-piper): one
Synthesize per sentence -> AudioStart, AudioChunk..., AudioStop, so playback starts on the
first sentence while the remote speaks the next."""
from __future__ import annotations

from collections.abc import Iterator

from wyoming.audio import AudioStop
from wyoming.tts import Synthesize, SynthesizeVoice

from ..audio import effects
from ..config import Settings
from ..text import speakable, split_sentences
from ..wyoming.audio import MonoPcm
from ..wyoming.client import RemoteError, WyomingRequests
from .base import PLAIN, EngineInfo, SpeechChunk, VoiceStyle


class WyomingTTS:
    name = "wyoming"

    def __init__(self, settings: Settings):
        self.voice = settings.tts.wyoming_voice
        self.remote = WyomingRequests(settings.tts.wyoming_uri, settings.wyoming)
        self.sample_rate = 22_050       # until the remote's first answer says otherwise
        self.info: EngineInfo | None = None

    def load(self) -> EngineInfo:
        """Ask the remote what it runs (raises RemoteUnavailable when it is down)."""
        program = self.remote.program("tts", "text-to-speech")
        voices = [v.name for v in program.voices if v.installed]
        if self.voice and self.voice not in voices:
            raise RemoteError(f"{self.remote.uri} has no voice {self.voice!r} (it has {', '.join(voices)})")
        self.info = EngineInfo(self.name, "remote", f"{program.name}: {self.voice or (voices or ['?'])[0]}",
                               source=self.remote.uri)
        return self.info

    def warmup(self) -> None:
        """Nothing to warm here; the remote warms its own model."""

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        """Sentence by sentence. The remote speaks in its own voice (a named voice's clip stays
        here); speed and pitch are applied here, as for every engine."""
        voice = SynthesizeVoice(name=self.voice) if self.voice else None
        for sentence in split_sentences(speakable(text)):   # as the local engines
            pcm = MonoPcm()
            self.remote.exchange([Synthesize(text=sentence, voice=voice).event()],
                                 lambda e: AudioStop.is_type(e.type), pcm.add_event)
            if pcm.rate:
                self.sample_rate = pcm.rate
                yield SpeechChunk(effects.apply(pcm.as_float(), pcm.rate, style.speed, style.pitch), pcm.rate, sentence)
