"""Speaker output: PyAudio, 24 kHz mono int16 by default, cancellable mid-reply.

Chunks (one per sentence) are written in short blocks so `stop()` cuts playback within
~one block. `playing` is what the wake word gate reads so the daemon does not hear itself.
In the daemon one thread plays (audio/speaker.py): each play gets its own stop event, so a
stop meant for one reply can never be cleared or swallowed by the next.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

import numpy as np

from ..config import AudioSettings
from ..engines.base import SpeechChunk
from .devices import close_quietly, find_device, new_pyaudio, open_stream
from .dsp import StreamResampler, float_to_int16, loudness_gain

log = logging.getLogger(__name__)
BLOCK_S = 0.05  # write granularity: bounds the stop latency


class Playback:
    def __init__(self, audio: AudioSettings):
        self.settings = audio
        self.rate = audio.output_rate
        self._stop = threading.Event()   # the current (or last) play's stop request
        self._playing = threading.Event()
        self.last_end = 0.0          # monotonic time playback last finished
        self.ok = True
        self.detail = "not opened yet"
        self._reported: str | None = None
        # Sees each play's start, every block as it goes to the speaker, and the end
        # (the echo guard scores the reply): .started(), .audio(out, rate), .ended().
        self.observer = None
        self._stop_at = 0.0
        self.cut_s: float | None = None   # last stop(): seconds until the stream was closed
        self.volume = 1.0   # a media player's volume (Home Assistant), over [audio] output_volume

    @property
    def target_lufs(self) -> float:
        """Replies are levelled to this integrated loudness (ITU-R BS.1770, pyloudnorm), then
        scaled by output_volume: [audio] output_target_lufs where the config has it."""
        return float(self.settings.output_target_lufs)

    @property
    def playing(self) -> bool:
        return self._playing.is_set()

    def stop(self, event: threading.Event | None = None) -> None:
        """Cut the current reply (barge-in, shutdown); `event`: that play's own stop event."""
        event = event or self._stop
        if not event.is_set():
            self._stop_at = time.monotonic()
        event.set()

    @property
    def stopped(self) -> bool:
        """The last reply was cut by stop()."""
        return self._stop.is_set()

    def play(self, chunks: Iterable[SpeechChunk], on_first_audio: Callable[[], None] | None = None,
             level: bool = True, stop: threading.Event | None = None) -> float:
        """Play chunks as they arrive; returns seconds of audio played. Blocks until done or stopped.
        level=False keeps the chunks' own loudness (earcons have their own volume setting).
        `stop`: this play's own stop event (set before the play starts = nothing is played)."""
        self._stop = stop if stop is not None else threading.Event()
        self.cut_s = None
        self._playing.set()
        if self.observer is not None:
            self.observer.started()
        played = 0.0
        pa = stream = None
        try:
            pa = new_pyaudio()
            index, name = find_device(pa, self.settings.output_device, "output")
            stream, choice = open_stream(pa, index, name, "output", self.rate, int(self.rate * BLOCK_S))
            self.ok, self.detail = True, f"{name} @ {choice.rate} Hz"
            self._reported = None
            resampler: StreamResampler | None = None
            src_rate = None
            gain = None
            frames = int(choice.rate * BLOCK_S)

            def write(out: np.ndarray) -> None:
                nonlocal played
                for i in range(0, len(out), frames):
                    if self._stop.is_set():
                        return
                    piece = out[i:i + frames]
                    if self.observer is not None:   # per block: never delays the first sound
                        self.observer.audio(piece, choice.rate)
                    stream.write(float_to_int16(np.repeat(piece, choice.channels) if choice.channels > 1
                                                else piece).tobytes())
                    if played == 0.0 and on_first_audio:
                        on_first_audio()
                    played += len(piece) / choice.rate

            for chunk in chunks:
                if self._stop.is_set():
                    break
                audio = chunk.audio.astype(np.float32, copy=False)
                if gain is None:  # one gain per reply, from its first sentence: no level jumps
                    gain = loudness_gain(audio, chunk.sample_rate, self.target_lufs) if level else 1.0
                audio = np.clip(audio * gain * self.settings.output_volume * self.volume, -1, 1)
                if src_rate != chunk.sample_rate:
                    if resampler is not None:
                        write(resampler.flush())   # the last sentence's tail, at its own rate
                    src_rate, resampler = chunk.sample_rate, StreamResampler(chunk.sample_rate, choice.rate)
                write(resampler.process(audio))
            if resampler is not None and not self._stop.is_set():
                write(resampler.flush())
            if not self._stop.is_set():
                # Pad with a short silence so the device drains the last sentence before close.
                stream.write(b"\0\0" * choice.channels * int(choice.rate * 0.1))
        except OSError as exc:
            self.ok, self.detail = False, str(exc)
            if self._reported != str(exc):
                log.error("speaker %s failed: %s — the reply was not played; check the audio server "
                          "and output device (voiced doctor)", self.settings.output_device, exc)
                self._reported = str(exc)
        finally:
            cut = self._stop.is_set()
            close_quietly(stream, pa, abort=cut)   # a cut reply's buffered audio is dropped, not drained
            self.last_end = time.monotonic()
            if cut:
                self.cut_s = self.last_end - self._stop_at
                log.info("playback cut: stopped %.0f ms after the stop request", self.cut_s * 1000)
            if self.observer is not None:
                self.observer.ended()
            self._playing.clear()
        return played
