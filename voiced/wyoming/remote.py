"""A remote Wyoming engine that follows the always-on rules: after a network fault it is
retried with back-off (a probe thread reconnects on its own), and while it is down the local
model answers if [wyoming] fallback_local is set. Its health is shown on the status page.

Sits inside recovery.RecoveringEngine (which still owns the local model's device choice):
RecoveringEngine -> RemoteWithFallback -> (WyomingSTT | WyomingTTS, local engine)."""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ..config import Settings, WyomingSettings, with_section
from ..engines.base import PLAIN, EngineInfo, SpeechChunk, Transcript, TransientEngineError, VoiceStyle
from ..recovery import remaining_text
from ..retry import Backoff
from .client import RemoteBusy, host_port

log = logging.getLogger(__name__)


_HEALTHS: weakref.WeakSet = weakref.WeakSet()   # every RemoteHealth alive: the roles that share a remote
_HEALTHS_LOCK = threading.Lock()


def remote_key(uri: str) -> str:
    """host:port of a tcp:// address, so the roles that use one remote find each other."""
    try:
        host, port = host_port(uri)
    except ValueError:
        return uri
    return f"{host.lower()}:{port}"


class RemoteHealth:
    """Up or down, and when to try again (exponential back-off with jitter from the first
    failure, voiced/retry.py).

    The roles that use one remote (STT, TTS, the wake word stream) each have one, with a
    back-off of their own; when one of them reaches the remote again, the others that are
    down try it at once instead of at the end of their back-off (retry_now), so a satellite
    goes back to its server as a whole, within one role's retry of it coming back."""

    def __init__(self, uri: str, ws: WyomingSettings):
        self.uri, self.ws = uri, ws
        self.key = remote_key(uri)
        self.state = "unknown"
        self.failures = 0              # in a row
        self.total_failures = 0
        self.last_error = ""
        self.last_ok: float | None = None   # wall time
        self.retry_at = 0.0            # monotonic
        self._backoff = Backoff(ws.reconnect_backoff_s, ws.reconnect_backoff_max_s)
        self.requests = {"remote": 0, "local": 0, "busy": 0}
        self._lock = threading.Lock()
        self._wakeup = threading.Event()   # ends sleep() early: retry_now() or interrupt()
        with _HEALTHS_LOCK:
            _HEALTHS.add(self)

    def may_try(self) -> bool:
        return self.state != "down" or time.monotonic() >= self.retry_at

    def ok(self) -> bool:
        """Record a success; True when this ends an outage. The other roles on this remote
        that are down try it now."""
        with self._lock:
            was = self.state
            self.state, self.failures, self.last_ok = "up", 0, time.time()
        if was != "up":
            with _HEALTHS_LOCK:
                peers = [h for h in _HEALTHS if h is not self and h.key == self.key]
            for peer in peers:
                peer.retry_now()
        return was == "down"

    def failed(self, exc: Exception) -> float:
        """Record a failure; returns the seconds until the next try."""
        with self._lock:
            self.failures += 1
            self.total_failures += 1
            delay = self._backoff.delay(self.failures)
            self.state, self.last_error, self.retry_at = "down", str(exc), time.monotonic() + delay
            return delay

    def retry_now(self) -> bool:
        """Another role reached this remote: end the back-off (True if it was down)."""
        with self._lock:
            if self.state != "down":
                return False
            self.retry_at = time.monotonic()
        self._wakeup.set()
        return True

    def sleep(self, seconds: float) -> None:
        """The retry thread's wait: `seconds`, or less if retry_now() or interrupt() comes."""
        self._wakeup.wait(max(0.0, seconds))
        self._wakeup.clear()

    def interrupt(self) -> None:
        """Wake the retry thread now (its owner is closing)."""
        self._wakeup.set()

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
    def languages(self) -> tuple[str, ...]:
        """The languages of whichever engine answers now (speech-to-text only; () = unknown)."""
        engine = self._local if self.health.state == "down" and self._local is not None else self.remote
        return tuple(getattr(engine, "languages", ()) or ())

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
        self.health.interrupt()
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
            self.health.sleep(wait)           # cut short when another role finds the remote back
            if self._stop.is_set():
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
            kind = type(why) if isinstance(why, TransientEngineError) else TransientEngineError
            raise kind(f"{why} (no local fallback: [wyoming] fallback_local = false)") \
                from (why if isinstance(why, Exception) else None)
        self.health.count("local")
        return self._local

    def transcribe(self, audio, expect: str = "", language: str = "") -> Transcript:
        if self._use_remote():
            try:
                result = self.remote.transcribe(audio, expect, language)
            except RemoteBusy as exc:
                self.health.count("busy")
                return self._local_engine(exc).transcribe(audio, expect, language)
            except TransientEngineError as exc:
                self._failed(exc)
                return self._local_engine(exc).transcribe(audio, expect, language)
            self._succeeded()
            return result
        return self._local_engine(f"{self.role}: remote {self.health.uri} down").transcribe(audio, expect, language)

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


def remote_stt(settings: Settings, make_local: Callable[[Settings], tuple[Any, EngineInfo]]
               ) -> tuple[RemoteWithFallback, EngineInfo]:
    """The remote STT, with `make_local` (the factory's make_stt) building the local fallback."""
    from ..engines.stt_wyoming import WyomingSTT

    local = with_section(settings, "stt", engine="auto")
    engine = RemoteWithFallback("stt", WyomingSTT(settings), _local_builder(local, make_local), settings.wyoming)
    return engine, engine.load()


def remote_tts(settings: Settings, make_local: Callable[[Settings], tuple[Any, EngineInfo]]
               ) -> tuple[RemoteWithFallback, EngineInfo]:
    """The remote TTS, with `make_local` (the factory's make_tts) building the local fallback."""
    from ..engines.tts_wyoming import WyomingTTS

    local = with_section(settings, "tts", engine="auto")
    engine = RemoteWithFallback("tts", WyomingTTS(settings), _local_builder(local, make_local), settings.wyoming)
    return engine, engine.load()
