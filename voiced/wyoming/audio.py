"""Between voiced's audio currency (float32 mono in [-1, 1]) and Wyoming's audio events
(16-bit little-endian PCM chunks with their rate, width and channels)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter
from wyoming.event import Event

from ..audio import dsp

SAMPLES_PER_CHUNK = 1024   # what the rhasspy services send; ~64 ms at 16 kHz


def audio_chunks(audio: np.ndarray, rate: int, samples_per_chunk: int = SAMPLES_PER_CHUNK) -> Iterator[AudioChunk]:
    """Float mono audio as AudioChunk events of 16-bit mono PCM."""
    pcm = dsp.float_to_int16(np.asarray(audio, dtype=np.float32))
    for start in range(0, len(pcm), samples_per_chunk):
        yield AudioChunk(rate=rate, width=2, channels=1, audio=pcm[start:start + samples_per_chunk].tobytes())


class MonoPcm:
    """Collects AudioChunks of any format as 16-bit mono PCM at one rate (None: the first chunk's)."""

    def __init__(self, rate: int | None = None):
        self.rate = rate
        self._converter = AudioChunkConverter(rate=rate, width=2, channels=1) if rate else None
        self.data = bytearray()

    def convert(self, chunk: AudioChunk) -> bytes:
        if self._converter is None:
            self.rate = chunk.rate
            self._converter = AudioChunkConverter(rate=chunk.rate, width=2, channels=1)
        return self._converter.convert(chunk).audio

    def add(self, chunk: AudioChunk) -> None:
        self.data += self.convert(chunk)

    def add_event(self, event: Event) -> None:
        """Collect the event's audio if it is an AudioChunk (others are ignored)."""
        if AudioChunk.is_type(event.type):
            self.add(AudioChunk.from_event(event))

    @property
    def seconds(self) -> float:
        return len(self.data) / 2 / self.rate if self.rate else 0.0

    def as_float(self) -> np.ndarray:
        return dsp.int16_to_float(bytes(self.data))
