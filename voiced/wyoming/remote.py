"""A remote Wyoming engine that follows the always-on rules: after a network fault it is
retried with back-off (a probe thread reconnects on its own), and while it is down the local
model answers if [wyoming] fallback_local is set. Its health is shown on the status page.

Sits inside recovery.RecoveringEngine (which still owns the local model's device choice):
RecoveringEngine -> RemoteWithFallback -> (WyomingSTT | WyomingTTS, local engine)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..config import Settings, WyomingSettings
from ..engines.base import PLAIN, EngineInfo, SpeechChunk, Transcript, TransientEngineError, VoiceStyle
from ..recovery import remaining_text
from .client import RemoteBusy

log = logging.getLogger(__name__)


class RemoteHealth:
    """Up or down, and when to try again (exponential back-off from the first failure)."""

    def __init__(self, uri: str, ws: WyomingSettings):
        self.uri, self.ws = uri, ws
        self.state = "unknown"
        self.failures = 0              # in a row
        self.total_failures = 0
        self.last_error = ""
        self.last_ok: float | None = None   # wall time
        self.retry_at = 0.0            # monotonic
        self.requests = {"remote": 0, "local": 0, "busy": 0}
        self._lock = threading.Lock()

    def may_try(self) -> bool:
        return self.state != "down" or time.monotonic() >= self.retry_at

    def ok(self) -> bool:
        """Record a success; True when this ends an outage."""
        with self._lock:
            was_down, self.state, self.failures, self.last_ok = self.state == "down", "up", 0, time.time()
            return was_down

    def failed(self, exc: Exception) -> float:
        """Record a failure; returns the seconds until the next try."""
        with self._lock:
            self.failures += 1
            self.total_failures += 1
            delay = min(self.ws.reconnect_backoff_max_s, self.ws.reconnect_backoff_s * 2 ** (self.failures - 1))
            self.state, self.last_error, self.retry_at = "down", str(exc), time.monotonic() + delay
            return delay

    def count(self, where: str) -> None:
        with self._lock:
            self.requests[where] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"uri": self.uri, "state": self.state, "failures_in_row": self.failures,
                    "failures": self.total_failures, "last_error": self.last_error, "last_ok": self.last_ok,
                    "retry_in_s": round(max(0.0, self.retry_at - time.monotonic()), 1) if self.state == "down" else None,
                    "requests": dict(self.requests)}


class RemoteWithFallback:
    """The remote engine while it answers; the local one (if any) while it is down."""

    def __init__(self, role: str, remote: Any, local_build: Callable[[], tuple[Any, EngineInfo]] | None,
                 ws: WyomingSettings):
        self.role, self.remote, self._local_build, self.ws = role, remote, local_build, ws
        self.health = RemoteHealth(remote.remote.uri, ws)
        self._local: Any = None
        self._local_info: EngineInfo | None = None
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None

    # -- what the daemon reads -------------------------------------------------------
    @property
    def info(self) -> EngineInfo:
        remote = self.remote.info or EngineInfo("wyoming", "remote", "(not reached yet)", source=self.health.uri)
        if self.health.state == "down" and self._local_info is not None:
            i = self._local_info
            return EngineInfo(i.name, i.device, i.model, i.source,
                              i.notes + (f"remote {self.health.uri} down: local fallback",))
        return remote

    @property
    def remote_health(self) -> dict:
        return {"role": self.role, "fallback": self._local_info.name if self._local_info else None,
                **self.health.snapshot()}

    @property
    def sample_rate(self) -> int:
        if self.health.state == "down" and self._local is not None:
            return self._local.sample_rate
        return self.remote.sample_rate

    # -- life cycle ------------------------------------------------------------------
    def load(self) -> EngineInfo:
        if self._local_build is not None:
            self._local, self._local_info = self._local_build()
        self._probe()
        if self.health.state == "up":
            log.info("%s: remote %s (%s)", self.role, self.health.uri, self.remote.info.model)
        elif self._local is None:
            log.error("%s: remote %s is down and [wyoming] fallback_local = false: %s turns fail until it "
                      "is back", self.role, self.health.uri, self.role.upper())
        self._prober = threading.Thread(target=self._probe_forever, name=f"{self.role}-wyoming-probe", daemon=True)
        self._prober.start()
        return self.info

    def warmup(self) -> None:
        if self._local is not None:
            self._local.warmup()

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._local, "close", None)
        if close:
            close()

    def _probe(self) -> None:
        try:
            self.remote.load()
        except Exception as exc:  # noqa: BLE001 - unreachable, or a wrong answer: not usable either way
            self._failed(exc)
        else:
            if self.health.ok():
                log.warning("%s: remote %s is back", self.role, self.health.uri)

    def _probe_forever(self) -> None:
        """Reconnect with back-off while down; a light describe now and then while up."""
        while not self._stop.is_set():
            if self.health.state == "down":
                wait = max(0.05, self.health.retry_at - time.monotonic())
            else:
                wait = self.ws.reconnect_backoff_max_s
            if self._stop.wait(wait):
                return
            if self.health.state != "down" or time.monotonic() >= self.health.retry_at:
                self._probe()

    def _failed(self, exc: Exception) -> None:
        was = self.health.state
        delay = self.health.failed(exc)
        if was != "down":
            then = f"the local {self._local_info.name} answers meanwhile" if self._local_info else "no fallback"
            log.error("%s: remote %s failed (%s); %s; retrying in %.1f s (back-off up to %g s)", self.role,
                      self.health.uri, exc, then, delay, self.ws.reconnect_backoff_max_s)

    # -- requests --------------------------------------------------------------------
    def _use_remote(self) -> bool:
        return self._local is None or self.health.may_try()

    def _local_engine(self, why: Exception | str):
        if self._local is None:
            raise why if isinstance(why, Exception) else TransientEngineError(why)
        self.health.count("local")
        return self._local

    def transcribe(self, audio) -> Transcript:
        if self._use_remote():
            try:
                result = self.remote.transcribe(audio)
            except RemoteBusy as exc:
                self.health.count("busy")
                return self._local_engine(exc).transcribe(audio)
            except TransientEngineError as exc:
                self._failed(exc)
                return self._local_engine(exc).transcribe(audio)
            self._succeeded()
            return result
        return self._local_engine(f"{self.role}: remote {self.health.uri} down").transcribe(audio)

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        """After a failure mid-reply the local engine says only what was not said yet."""
        if self._use_remote():
            spoken: list[str] = []
            try:
                for chunk in self.remote.synthesize(text, style):
                    spoken.append(chunk.text)
                    yield chunk
            except RemoteBusy as exc:
                self.health.count("busy")
                local = self._local_engine(exc)
            except TransientEngineError as exc:
                self._failed(exc)
                local = self._local_engine(exc)
            else:
                self._succeeded()
                return
            text = remaining_text(text, spoken)
            if text.strip():
                yield from local.synthesize(text, style)
            return
        yield from self._local_engine(f"{self.role}: remote {self.health.uri} down").synthesize(text, style)

    def _succeeded(self) -> None:
        self.health.count("remote")
        if self.health.ok():
            log.warning("%s: remote %s is back", self.role, self.health.uri)


def _local_builder(settings: Settings, build: Callable[[Settings], tuple[Any, EngineInfo]]):
    if not settings.wyoming.fallback_local:
        return None
    return lambda: build(settings)


def remote_stt(settings: Settings) -> tuple[RemoteWithFallback, EngineInfo]:
    from ..engines.factory import make_stt
    from ..engines.stt_wyoming import WyomingSTT
    from ..recovery import with_device

    local = with_device(settings, "stt", engine="auto")
    engine = RemoteWithFallback("stt", WyomingSTT(settings), _local_builder(local, make_stt), settings.wyoming)
    return engine, engine.load()


def remote_tts(settings: Settings) -> tuple[RemoteWithFallback, EngineInfo]:
    from ..engines.factory import make_tts
    from ..engines.tts_wyoming import WyomingTTS
    from ..recovery import with_device

    local = with_device(settings, "tts", engine="auto")
    engine = RemoteWithFallback("tts", WyomingTTS(settings), _local_builder(local, make_tts), settings.wyoming)
    return engine, engine.load()
