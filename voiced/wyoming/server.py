"""voiced's models as Wyoming services, on their own thread and event loop beside the daemon:
one connection per client (max_clients), model calls through one fair queue (max_queue)."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial

import numpy as np
from wyoming.server import AsyncTcpServer

from ..config import WyomingSettings
from ..engines.base import PLAIN, SpeechChunk, VoiceStyle
from .handler import VoicedHandler
from .info import describe, stt_languages
from .queue import ModelQueue

log = logging.getLogger(__name__)


class DetectorPool:
    """Wake word detectors, one per streaming client, kept for reuse (a fresh one takes a
    moment to load); at most max_clients exist, as each client holds at most one."""

    def __init__(self, make: Callable[[], object]):
        self._make, self._free, self._lock = make, [], threading.Lock()

    def acquire(self):
        with self._lock:
            detector = self._free.pop() if self._free else None
        if detector is None:
            return self._make()
        detector.reset()
        return detector

    def release(self, detector) -> None:
        with self._lock:
            self._free.append(detector)


class WyomingService:
    """What the handlers share: the engines, the limits, the queue and the counters."""

    def __init__(self, settings: WyomingSettings, stt, tts, wake_names: tuple[str, ...],
                 make_detector: Callable[[], object], stt_language: str | tuple[str, ...] = "en",
                 prepare: Callable[[np.ndarray], tuple[np.ndarray | None, str]] | None = None,
                 style: Callable[[], VoiceStyle] = lambda: PLAIN):
        self.settings, self.stt, self.tts, self.wake_names = settings, stt, tts, tuple(wake_names)
        self.stt_language, self.prepare, self.style = stt_language, prepare, style
        self.detectors = DetectorPool(make_detector)
        self.queue = ModelQueue(settings.max_queue)
        self.clients = 0
        self.counts = {"connections": 0, "refused_connections": 0, "transcripts": 0, "syntheses": 0}

    @classmethod
    def for_daemon(cls, daemon, settings: WyomingSettings) -> WyomingService:
        """The loaded daemon's STT, TTS and wake words, and its own input path for requests."""
        from ..models.openwakeword_assets import assets_dir
        from ..triggers.wakeword import WakeWordDetector

        s = daemon.settings
        return cls(settings, daemon.stt, daemon.tts, daemon.wake.names,
                   lambda: WakeWordDetector(s.wake, assets_dir(s)), tuple(s.stt.language), prepare=daemon.prepare_request,
                   style=daemon.default_style)   # the daemon's own voice: default voice, speed, pitch

    def connect(self) -> bool:
        if self.clients >= self.settings.max_clients:
            self.counts["refused_connections"] += 1
            return False
        self.clients += 1
        self.counts["connections"] += 1
        return True

    def disconnect(self) -> None:
        self.clients -= 1

    def describe(self):
        return describe(self.stt.info if self.stt else None, self.tts.info if self.tts else None,
                        self.wake_names, stt_languages(self.stt_language, self.stt))

    async def transcribe(self, audio: np.ndarray, language: str = "") -> tuple[str, str]:
        """(text, its language) for a client's audio; `language` is the one its transcribe event
        asked for (Home Assistant sends its pipeline's), else [stt] language decides."""
        async with self.queue.admit():   # admitted first: a refused client costs nothing
            transcript = await self.queue.run(lambda: self._transcribe(audio, language))   # off the event loop
        if transcript is None:
            return "", language
        self.counts["transcripts"] += 1
        log.info("wyoming: transcribed %.1f s in %.2f s (%s): %r", transcript.audio_s, transcript.elapsed_s,
                 transcript.language or "?", transcript.text)
        return transcript.text, transcript.language or language

    def _transcribe(self, audio: np.ndarray, language: str = ""):
        if self.prepare is not None:   # the daemon's own input path: DC removal, level check, gain
            prepared, why = self.prepare(audio)
            if prepared is None:
                log.info("wyoming: audio dropped: %s", why)
                return None
            audio = prepared
        return self.stt.transcribe(audio, "", language)

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Sentence by sentence as the engine makes them; one reply at a time on the models."""
        async with self.queue.admit():
            style = self.style()
            async for chunk in self.queue.stream(lambda: self.tts.synthesize(text, style)):
                yield chunk
        self.counts["syntheses"] += 1
        log.info("wyoming: synthesised %d characters", len(text))

    def stats(self) -> dict:
        return {"clients": self.clients, "max_clients": self.settings.max_clients, **self.counts,
                "queue": self.queue.stats()}


class WyomingServer:
    """The TCP server on a thread of its own; start() raises OSError if the port is taken."""

    def __init__(self, service: WyomingService, host: str, port: int):
        self.service, self.host, self.port = service, host, port
        self.uri = f"tcp://{host}:{port}"
        self._loop = asyncio.new_event_loop()
        self._server = AsyncTcpServer(host, port)
        self._thread: threading.Thread | None = None

    def start(self) -> WyomingServer:
        # Bind here, on the caller's thread, so a taken port is the caller's error.
        self._loop.run_until_complete(self._server.start(partial(VoicedHandler, service=self.service)))
        self._thread = threading.Thread(target=self._loop.run_forever, name="wyoming-server", daemon=True)
        self._thread.start()
        log.info("wyoming server listening on %s (max_clients %d, max_queue %d)", self.uri,
                 self.service.settings.max_clients, self.service.settings.max_queue)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop)
        try:
            future.result(timeout)
        except Exception as exc:  # noqa: BLE001 - stopping must not fail the daemon's shutdown
            log.warning("wyoming server: stop: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self.service.queue.close()
        self._thread = None


def start_for_daemon(daemon) -> WyomingServer | None:
    """The daemon's STT, TTS and wake words as Wyoming services ([wyoming] enabled = true)."""
    s = daemon.settings
    try:
        return WyomingServer(WyomingService.for_daemon(daemon, s.wyoming), s.wyoming.host, s.wyoming.port).start()
    except OSError as exc:
        log.error("wyoming server: cannot listen on %s:%d (%s); running without it", s.wyoming.host,
                  s.wyoming.port, exc)
        return None


def wyoming_status(daemon) -> dict:
    """For Daemon.status(): the server's counters, and the health of remote engines in use."""
    server = getattr(daemon, "wyoming", None)
    remotes = [h for h in (getattr(e, "remote_health", None) for e in (daemon.stt, daemon.tts, daemon.wake) if e is not None) if h]
    return {"server": {"uri": server.uri, **server.service.stats()} if server else None, "remotes": remotes}
