"""Wake word detection by a remote Wyoming service (another voiced, wyoming-openwakeword): the
microphone's frames, while voiced listens for the wake word, stream to it on one connection
(Detect, AudioStart, AudioChunk...) and its Detection events come back. A thread owns the
connection; process() never blocks the listen loop (a detection is returned on the next
frame after it arrives, ~0.1 s later). While the remote is down the local models listen
([wyoming] fallback_local) and the connection is retried with back-off, or at once when the
STT or TTS on the same remote reaches it again (RemoteHealth.retry_now).

The remote counts as back ("wake: remote ... is back", state "up" on the status page) only
once it has answered a Describe with the wanted wake word and taken the stream: an accepted
TCP connection alone proves nothing (a hung server, a full one, one without the wake word).
From the next frame on the remote scores the wake word; the status page says which one does
("scoring") and counts the detections of each ("requests")."""
from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
from collections import deque

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.wake import Detect
from wyoming.wake import Detection as WyomingDetection

from ..config import Settings
from ..wyoming.client import RemoteError, RemoteUnavailable, host_port
from ..wyoming.remote import RemoteHealth
from .wakeword import SAMPLE_RATE, Detection, WakeWordDetector, _as_int16

log = logging.getLogger(__name__)
MAX_BUFFERED_FRAMES = 50      # 4 s of 80 ms frames: more means the stream is stuck; drop


def wake_key(name: str) -> str:
    """One spelling for a wake word name: "Hey Jarvis", "hey_jarvis_v0.1" (wyoming-openwakeword's
    model and detection name), "hey_jarvis_v0.1.tflite" -> "hey_jarvis"."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    key = re.sub(r"\.(onnx|tflite)$", "", key)
    return re.sub(r"_v\d+(\.\d+)*$", "", key)


def check_wake_offer(info: Info, wanted: list[str], uri: str) -> dict[str, str]:
    """The remote's wake words (wake_key -> its spelling); RemoteError if it offers no wake
    word detection or none of the `wanted` ones (`voiced doctor` asks the same)."""
    programs = [p for p in info.wake if p.installed]
    if not programs:
        raise RemoteError(f"{uri} offers no wake word detection")
    offered = {wake_key(m.name): m.name for p in programs for m in p.models if m.installed}
    keys = {wake_key(n) for n in wanted}
    if offered and keys and not keys & offered.keys():
        raise RemoteError(f"{uri} offers no wake word {', '.join(wanted)} "
                          f"(it has {', '.join(sorted(offered.values()))})")
    return offered


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
        # A remote (wyoming-openwakeword) sends a detection for each of the 5-6 frames of one
        # utterance that score over its threshold: as the local detector, one fires and the
        # rest inside [wake] refractory_s of audio are dropped (reset() ends the period).
        self.refractory_s = settings.wake.refractory_s
        self._quiet_until_s = -1.0
        self.received = 0             # detection events the remote sent (more than the wake words heard)
        self._using: str | None = None   # which detector scored the last frame: "remote" or "local"
        self._remote_names: dict[str, str] = {}   # wake_key -> the remote's spelling (from its Info)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake-wyoming", daemon=True)
        self._thread.start()

    @property
    def names(self) -> tuple[str, ...]:
        return self.local.names if self.local is not None else tuple(self.wanted)

    @property
    def remote_health(self) -> dict:
        """For the status page; "requests" counts the wake words each detector heard."""
        return {"role": "wake", "fallback": "openwakeword" if self.local else None, "scoring": self._using,
                **self.health.snapshot()}

    # -- the listen loop's side ----------------------------------------------------------
    def process(self, frame: np.ndarray) -> Detection | None:
        audio = _as_int16(frame)
        self._samples += len(audio)
        if self.health.state == "up":             # from the first frame after the remote is back
            self._using = "remote"
            try:
                self._frames.put_nowait(audio)
            except queue.Full:
                pass                              # stream stalled: its write timeout ends it
            while True:
                try:
                    detection = self._detections.popleft()
                except IndexError:                # none (or the stream thread just cleared them)
                    return None
                if detection.audio_time_s > self._quiet_until_s:
                    break
                log.debug("wake: remote detection %s inside the refractory period: dropped", detection.model)
            self._quiet_until_s = detection.audio_time_s + self.refractory_s
            self.health.count("remote")
            return detection
        if self.local is None:
            self._using = None
            return None
        if self._using != "local":                # what it buffered long ago is stale
            self.local.reset()
            self._detections.clear()              # a dead stream's: its audio is old
            self._using = "local"
        detection = self.local.process(audio)
        if detection is not None:
            self.health.count("local")
        return detection

    def reset(self) -> None:
        self._detections.clear()
        self._quiet_until_s = -1.0                # as the local detector: a reset ends the period
        self._generation += 1
        if self.local is not None:
            self.local.reset()

    def close(self) -> None:
        self._stop.set()
        self.health.interrupt()
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
                                           else RemoteUnavailable(f"{self.uri}: {str(exc) or type(exc).__name__}"))
                if was != "down":
                    log.error("wake: remote %s failed (%s); %s; retrying in %.1f s (back-off up to %g s, "
                              "or as soon as the STT or TTS on it is back)", self.uri, self.health.last_error,
                              "the local models listen meanwhile" if self.local else "no wake word meanwhile",
                              delay, self.ws.reconnect_backoff_max_s)
                self.health.sleep(delay)          # cut short by retry_now() or close()

    async def _stream(self) -> None:
        """One connection: stream frames until reset() or close(); raises on any fault."""
        client = AsyncTcpClient(self.host, self.port, connect_timeout=self.ws.connect_timeout_s)
        async with client:
            write = self.ws.read_timeout_s
            if self.health.state != "up":         # (re)connecting, not a reset(): it answers, with our wake word
                await self._check_offer(client, write)
            names = [self._remote_names.get(wake_key(n), n) for n in self.wanted]
            await asyncio.wait_for(client.write_event(Detect(names=names).event()), write)
            await asyncio.wait_for(client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event()), write)
            generation = self._generation
            while not self._frames.empty():       # frames from before this stream: not for it
                self._frames.get_nowait()
            self._detections.clear()              # an earlier stream's: not for this audio
            if self.health.ok():
                log.warning("wake: remote %s is back; the wake word is detected there again", self.uri)
            reader = asyncio.create_task(self._read(client, generation))
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

    async def _check_offer(self, client: AsyncTcpClient, timeout: float) -> None:
        """Describe -> Info: the remote serves (not just accepts connections) and offers the
        wanted wake word; remembers its spelling of each name for Detect."""
        await asyncio.wait_for(client.write_event(Describe().event()), timeout)
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout)
            if event is None:
                raise RemoteUnavailable(f"{self.uri} closed the connection before describing itself")
            if Error.is_type(event.type):
                raise RemoteError(f"{self.uri}: {Error.from_event(event).text}")
            if Info.is_type(event.type):
                break
        self._remote_names = check_wake_offer(Info.from_event(event), self.wanted, self.uri)

    async def _read(self, client: AsyncTcpClient, generation: int) -> None:
        ours = {wake_key(n): n for n in self.names}
        while True:
            event = await client.read_event()
            if event is None:
                raise RemoteUnavailable(f"{self.uri} closed the connection")
            if Error.is_type(event.type):
                raise RemoteError(f"{self.uri}: {Error.from_event(event).text}")
            if WyomingDetection.is_type(event.type) and generation == self._generation:   # not before a reset()
                self.received += 1
                theirs = WyomingDetection.from_event(event).name or self.wanted[0]
                name = ours.get(wake_key(theirs))   # our spelling ("hey_jarvis_v0.1" -> "hey_jarvis")
                if name is None:                    # a server that listens for all its models
                    log.debug("wake: remote detection %s is not a configured wake word: ignored", theirs)
                    continue
                log.debug("wake: remote detection %s (%s)", name, theirs)
                self._detections.append(Detection(name, 1.0, self._samples / SAMPLE_RATE))


def make_wake_detector(settings: Settings):
    """The local openWakeWord detector, or the remote one (with the local as its fallback)."""
    from ..models.openwakeword_assets import assets_dir

    remote = settings.wake.engine == "wyoming"
    local = WakeWordDetector(settings.wake, assets_dir(settings)) \
        if not remote or settings.wyoming.fallback_local else None
    return RemoteWakeDetector(settings, local) if remote else local
