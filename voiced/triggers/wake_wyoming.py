"""Wake word detection by a remote Wyoming service (another voiced, wyoming-openwakeword): the
microphone's frames, while voiced listens for the wake word, stream to it on one connection
(Detect, AudioStart, AudioChunk...) and its Detection events come back. A thread owns the
connection; process() never blocks the listen loop (a detection is returned on the next
frame after it arrives, ~0.1 s later). While the remote is down the local models listen
([wyoming] fallback_local) and the connection is retried with back-off."""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.wake import Detect
from wyoming.wake import Detection as WyomingDetection

from ..config import Settings
from ..wyoming.client import RemoteError, RemoteUnavailable, host_port
from ..wyoming.remote import RemoteHealth
from .wakeword import SAMPLE_RATE, Detection, WakeWordDetector, _as_int16

log = logging.getLogger(__name__)
MAX_BUFFERED_FRAMES = 50      # 4 s of 80 ms frames: more means the stream is stuck; drop


class RemoteWakeDetector:
    """The WakeWordDetector interface (process, reset, names) over a remote service."""

    def __init__(self, settings: Settings, local: WakeWordDetector | None):
        self.uri, self.ws, self.local = settings.wake.wyoming_uri, settings.wyoming, local
        self.host, self.port = host_port(self.uri)
        self.wanted = list(settings.wake.models)
        self.health = RemoteHealth(self.uri, self.ws)
        self._frames: queue.Queue = queue.Queue(MAX_BUFFERED_FRAMES)
        self._detections: deque[Detection] = deque()
        self._generation = 0          # reset() bumps it: the stream restarts with fresh buffers
        self._samples = 0             # audio clock: samples given to process()
        self._using = "local"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake-wyoming", daemon=True)
        self._thread.start()

    @property
    def names(self) -> tuple[str, ...]:
        return self.local.names if self.local is not None else tuple(self.wanted)

    @property
    def remote_health(self) -> dict:
        return {"role": "wake", "fallback": "openwakeword" if self.local else None, **self.health.snapshot()}

    # -- the listen loop's side ----------------------------------------------------------
    def process(self, frame: np.ndarray) -> Detection | None:
        audio = _as_int16(frame)
        self._samples += len(audio)
        if self.health.state == "up":
            self._using = "remote"
            try:
                self._frames.put_nowait(audio)
            except queue.Full:
                pass                              # stream stalled: its write timeout ends it
            return self._detections.popleft() if self._detections else None
        if self.local is None:
            return None
        if self._using != "local":                # what it buffered long ago is stale
            self.local.reset()
            self._using = "local"
        return self.local.process(audio)

    def reset(self) -> None:
        self._detections.clear()
        self._generation += 1
        if self.local is not None:
            self.local.reset()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- the connection's thread -----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._stream())
            except Exception as exc:  # noqa: BLE001 - whatever ends the stream, the thread goes on
                if not isinstance(exc, (OSError, EOFError, asyncio.TimeoutError, RemoteUnavailable, RemoteError)):
                    log.exception("wake: the stream to %s broke unexpectedly", self.uri)
                was = self.health.state
                delay = self.health.failed(exc if isinstance(exc, (RemoteUnavailable, RemoteError))
                                           else RemoteUnavailable(f"{self.uri}: {exc or type(exc).__name__}"))
                if was != "down":
                    log.error("wake: remote %s failed (%s); %s; retrying in %.1f s (back-off up to %g s)",
                              self.uri, self.health.last_error,
                              "the local models listen meanwhile" if self.local else "no wake word meanwhile",
                              delay, self.ws.reconnect_backoff_max_s)
                self._stop.wait(delay)

    async def _stream(self) -> None:
        """One connection: stream frames until reset() or close(); raises on any fault."""
        client = AsyncTcpClient(self.host, self.port, connect_timeout=self.ws.connect_timeout_s)
        async with client:
            write = self.ws.read_timeout_s
            await asyncio.wait_for(client.write_event(Detect(names=self.wanted).event()), write)
            await asyncio.wait_for(client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event()), write)
            generation = self._generation
            while not self._frames.empty():       # frames from before this stream: not for it
                self._frames.get_nowait()
            if self.health.ok():
                log.warning("wake: remote %s is back", self.uri)
            reader = asyncio.create_task(self._read(client))
            try:
                while not self._stop.is_set() and generation == self._generation:
                    frame = await asyncio.to_thread(self._next_frame)
                    if reader.done():
                        reader.result()           # raises what ended the reader
                        raise RemoteUnavailable(f"{self.uri} ended the wake word stream")
                    if frame is not None:
                        chunk = AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=frame.tobytes())
                        await asyncio.wait_for(client.write_event(chunk.event()), write)
                await asyncio.wait_for(client.write_event(AudioStop().event()), write)
            finally:
                reader.cancel()

    def _next_frame(self) -> np.ndarray | None:
        try:
            return self._frames.get(timeout=0.2)
        except queue.Empty:
            return None

    async def _read(self, client: AsyncTcpClient) -> None:
        while True:
            event = await client.read_event()
            if event is None:
                raise RemoteUnavailable(f"{self.uri} closed the connection")
            if Error.is_type(event.type):
                raise RemoteError(f"{self.uri}: {Error.from_event(event).text}")
            if WyomingDetection.is_type(event.type):
                name = WyomingDetection.from_event(event).name or self.wanted[0]
                log.debug("wake: remote detection %s", name)
                self._detections.append(Detection(name, 1.0, self._samples / SAMPLE_RATE))


def make_wake_detector(settings: Settings):
    """The local openWakeWord detector, or the remote one (with the local as its fallback)."""
    from ..models.openwakeword_assets import assets_dir

    remote = settings.wake.engine == "wyoming"
    local = WakeWordDetector(settings.wake, assets_dir(settings)) \
        if not remote or settings.wyoming.fallback_local else None
    return RemoteWakeDetector(settings, local) if remote else local
