"""espeak-ng: the last-resort voice. Robotic, but always there once the Debian package is
installed, and ~10 ms to first audio. One `espeak-ng --stdout` run per sentence."""
from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator

import numpy as np

from ..audio import effects
from ..config import TtsSettings
from ..text import speakable, split_sentences
from .base import (
    EngineInfo,
    FatalEngineError,
    PLAIN,
    MissingDependency,
    SpeechChunk,
    TransientEngineError,
    VoiceStyle,
)

BINARY = "espeak-ng"


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (float32 mono, rate). espeak-ng writes to a pipe, so it cannot go
    back to fill in the RIFF/data sizes: they are placeholders, and the data runs to the end."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    pos, rate, channels, bits = 12, 0, 1, 16
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            _fmt, channels, rate, _br, _align, bits = struct.unpack_from("<HHIIHH", data, body)
        elif cid == b"data":
            if bits != 16:
                raise ValueError(f"{bits}-bit WAV; expected 16")
            pcm = data[body:]
            pcm = pcm[:len(pcm) - len(pcm) % (2 * channels)]
            audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            return audio.reshape(-1, channels).mean(axis=1), rate
        pos = body + size + (size & 1)
    raise ValueError("WAV stream without a data chunk")


class EspeakEngine:
    name = "espeak"

    def __init__(self, tts: TtsSettings, *, timeout_s: float = 10.0):
        self.tts = tts
        self.timeout_s = timeout_s
        self.sample_rate = 22_050
        self._binary: str | None = None

    def load(self) -> EngineInfo:
        self._binary = shutil.which(BINARY)
        if self._binary is None:
            raise MissingDependency("espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)")
        _audio, self.sample_rate = self._run("ready")   # also checks the voice exists
        return EngineInfo(self.name, "cpu", f"espeak-ng voice {self.tts.espeak_voice}", self._binary)

    def warmup(self) -> None:
        """Nothing to warm: each sentence is a fresh process."""

    def _run(self, text: str) -> tuple[np.ndarray, int]:
        cmd = [self._binary, "-v", self.tts.espeak_voice, "--stdout", "--stdin"]
        try:
            proc = subprocess.run(cmd, input=text.encode(), capture_output=True, timeout=self.timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise TransientEngineError(f"espeak-ng took over {self.timeout_s} s") from exc
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode(errors="replace").strip()
            raise FatalEngineError(f"espeak-ng failed (voice {self.tts.espeak_voice!r}): {err}")
        try:
            return parse_wav(proc.stdout)
        except ValueError as exc:
            raise TransientEngineError(f"espeak-ng output unreadable: {exc}") from exc

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        if self._binary is None:
            self.load()
        return sentence_chunks(text, style, self._run)


def sentence_chunks(text: str, style: VoiceStyle, render) -> Iterator[SpeechChunk]:
    """One chunk per sentence from `render(sentence) -> (audio, rate)` (a process per sentence:
    espeak-ng, pico2wave), in `style`'s speed and pitch."""
    for sentence in split_sentences(speakable(text)):
        audio, rate = render(sentence)
        audio = effects.apply(audio, rate, style.speed, style.pitch)
        yield SpeechChunk(audio=audio, sample_rate=rate, text=sentence)
