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


def some_names(names: list[str], show: int = 5) -> str:
    """A short list for a log line: "a, b, c, d, e and 165 more"."""
    head = ", ".join(names[:show]) or "none"
    return f"{head} and {len(names) - show} more" if len(names) > show else head


class WyomingTTS:
    name = "wyoming"

    def __init__(self, settings: Settings):
        self.voice = settings.tts.wyoming_voice
        self.remote = WyomingRequests(settings.tts.wyoming_uri, settings.wyoming)
        self.sample_rate = 22_050       # until the remote's first answer says otherwise
        self.info: EngineInfo | None = None
        self._voice_checked = False     # the configured voice was spoken by this remote

    def load(self) -> EngineInfo:
        """Ask the remote what it runs (raises RemoteUnavailable when it is down, RemoteError
        when it cannot speak the configured voice).

        A server's voice list does not say what it can speak: wyoming-piper lists its whole
        catalogue (~170 voices, every one "installed") and speaks only those on its disk
        (or that it can download), and it does not say which one is its default. So the
        configured voice is tried once with a word (~20 ms), and without one the remote's
        default is reported as such, not as the first name of the list."""
        try:
            program = self.remote.program("tts", "text-to-speech")
            voices = [v.name for v in program.voices if v.installed]
            if self.voice:
                if voices and self.voice not in voices:
                    raise RemoteError(f"{self.remote.uri} ({program.name}) has no voice {self.voice!r} ([tts] "
                                      f"wyoming_voice); it lists {len(voices)}: {some_names(voices)}")
                if not self._voice_checked:
                    self._check_voice(program.name)
                model = f"{program.name}: {self.voice}"
            elif len(voices) == 1:          # e.g. another voiced: its one voice is the default
                model = f"{program.name}: {voices[0]}"
            else:
                model = f"{program.name}: its default voice" + (f" (of {len(voices)} listed)" if voices else "")
        except Exception:
            self._voice_checked = False     # a restarted remote may have other voices on disk
            raise
        self.info = EngineInfo(self.name, "remote", model, source=self.remote.uri)
        return self.info

    def _check_voice(self, program: str) -> None:
        """Speak one word with the configured voice: an error answer means the server lists
        the voice but cannot speak it."""
        pcm = MonoPcm()
        try:
            self.remote.exchange([Synthesize(text="ok", voice=SynthesizeVoice(name=self.voice)).event()],
                                 lambda e: AudioStop.is_type(e.type), pcm.add_event)
        except RemoteError as exc:
            said = f"{exc.code}: {exc.text}" if exc.code else exc.text
            where = " (its --data-dir)" if program == "piper" else ""
            raise RemoteError(f"{self.remote.uri} ({program}) cannot speak voice {self.voice!r} ([tts] wyoming_voice): "
                              f"{said}; install that voice on the server{where}, or set [tts] wyoming_voice = \"\" "
                              "to use its default voice") from None
        if pcm.rate:
            self.sample_rate = pcm.rate
        self._voice_checked = True

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
