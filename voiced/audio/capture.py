"""Microphone capture: PyAudio blocking reads on a reader thread -> 16 kHz mono int16 frames.

The reader only reads, converts and enqueues (no inference), so a slow consumer can never
make the device overrun. A supervisor thread watches it: a device error ends the reader,
and the supervisor reopens with exponential back-off and jitter (voiced/retry.py),
recreating the PyAudio object (one made while the audio server was down never sees it
come back). A suspended source makes read() block: after `read_timeout_s` the capture is
reported stalled, and if it stays stuck the reader is abandoned and a fresh one opened.
(PortAudio's callback mode would avoid the blocking read, but through ALSA's pulse plugin it
delivered audio unreliably.)
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..config import AudioSettings
from ..retry import Backoff
from .devices import close_quietly, find_device, new_pyaudio, open_stream
from .dsp import StreamResampler, downmix

log = logging.getLogger(__name__)
RATE = 16_000


@dataclass(frozen=True)
class CaptureHealth:
    ok: bool
    device: str
    detail: str                 # why not ok / what it runs at
    last_frame_age_s: float     # seconds since the last frame was delivered
    reopen_count: int


class CaptureStalled(OSError):
    """No audio arrived within the deadline although the stream claims to be open."""


class Capture:
    def __init__(self, audio: AudioSettings, max_queue_s: float = 5.0, sink=None):
        """sink(frame) receives each frame (the daemon's turn owner); without one, frames
        queue here for read()."""
        self.settings = audio
        self.sink = sink
        self.frame_samples = RATE * audio.chunk_ms // 1000
        self.frames: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(4, int(max_queue_s * 1000 / audio.chunk_ms)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._device = "(not open)"
        self._detail = "starting"
        self._ok = False
        self._last_frame = time.monotonic()
        self._reopens = 0
        self._dropped = 0
        self._frames_since_open = 0
        self._generation = 0

    # -- public -------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def read(self, timeout: float = 0.5) -> np.ndarray | None:
        """Next frame (int16, frame_samples long) or None if none arrived in time."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_open(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self._ok:
            time.sleep(0.05)
        return self._ok

    def health(self) -> CaptureHealth:
        return CaptureHealth(self._ok, self._device, self._detail,
                             time.monotonic() - self._last_frame, self._reopens)

    # -- supervisor thread ----------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff(self.settings.reopen_backoff_s, self.settings.reopen_backoff_max_s)
        reported = None  # log each distinct failure once, not on every retry
        timeout = self.settings.read_timeout_s
        while not self._stop.is_set():
            self._generation += 1
            gen, done, error = self._generation, threading.Event(), []
            threading.Thread(target=self._reader, args=(gen, done, error), name=f"capture-{gen}", daemon=True).start()
            opened = time.monotonic()
            while not self._stop.is_set() and not done.wait(0.2):
                age = time.monotonic() - max(self._last_frame, opened)
                if self._ok and age > timeout:
                    self._ok, self._detail = False, f"no audio for {age:.0f} s (stalled)"
                    log.error("microphone %s stalled: no audio for %.0f s", self._device, age)
                if age > 3 * timeout:
                    error.append(CaptureStalled(f"no audio for {age:.0f} s (stalled); reopening"))
                    break   # abandon the stuck reader; it exits when its read returns
            if self._stop.is_set():
                break
            self._ok = False
            if self._frames_since_open:
                backoff.reset()   # it worked for a while: retry soon
            exc = error[0] if error else OSError("the input stream ended")
            self._detail = str(exc)
            if str(exc) != reported:
                log.error("microphone %s failed: %s; retrying with back-off up to %.0f s; check that "
                          "the audio server runs and the device is plugged in (voiced doctor lists devices)",
                          self._device, exc, self.settings.reopen_backoff_max_s)
                reported = str(exc)
            self._stop.wait(backoff.next())
            self._reopens += 1

    def _reader(self, gen: int, done: threading.Event, error: list) -> None:
        try:
            self._read_until_error(gen)
        except OSError as exc:  # DeviceNotFound is one too
            error.append(exc)
        finally:
            done.set()

    def _read_until_error(self, gen: int) -> None:
        self._frames_since_open = 0
        pa = new_pyaudio()
        stream = None
        try:
            index, name = find_device(pa, self.settings.input_device, "input")
            self._device = name
            stream, choice = open_stream(pa, index, name, "input", RATE, self.frame_samples)
            block = max(1, self.frame_samples * choice.rate // RATE)
            resampler = StreamResampler(choice.rate, RATE)
            pending = np.zeros(0, dtype=np.float32)
            self._detail = f"{choice.rate} Hz, {choice.channels} ch" + ("" if choice.rate == RATE else " (resampled)")
            while not self._stop.is_set() and gen == self._generation:
                pcm = np.frombuffer(stream.read(block, exception_on_overflow=False), dtype=np.int16)
                if gen != self._generation:
                    break   # abandoned while blocked: a newer reader owns the capture
                if not self._ok:
                    self._ok = True
                    if self._reopens or self._frames_since_open:
                        log.info("microphone %s is back (%s)", name, self._detail)
                if choice.channels > 1 or choice.rate != RATE:
                    pending = np.concatenate([pending, resampler.process(downmix(pcm.astype(np.float32), choice.channels))])
                    while len(pending) >= self.frame_samples:
                        self._deliver(np.clip(pending[: self.frame_samples], -32768, 32767).astype(np.int16))
                        pending = pending[self.frame_samples:]
                else:
                    self._deliver(pcm.copy())
        finally:
            if gen == self._generation:
                self._ok = False
            close_quietly(stream, pa)

    def _deliver(self, frame: np.ndarray) -> None:
        self._last_frame = time.monotonic()
        self._frames_since_open += 1
        if self.sink is not None:
            self.sink(frame)
            return
        try:
            self.frames.put_nowait(frame)
        except queue.Full:
            # The consumer is stuck: drop the oldest audio rather than block the device.
            try:
                self.frames.get_nowait()
            except queue.Empty:
                pass
            self.frames.put_nowait(frame)
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 100 == 0:
                log.warning("audio consumer is behind: dropped %d frames", self._dropped)
