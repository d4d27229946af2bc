"""Keeps a model engine answering through GPU trouble: retry after OOM, CPU after a fatal CUDA error, re-probe back."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .config import with_section as with_device  # noqa: F401 - its old name and import path
from .engines.base import PLAIN, EngineInfo, FatalEngineError, OutOfMemory, SpeechChunk, VoiceStyle
from .engines.errors import Kind, classify  # noqa: F401 - Kind: its old import path
from .engines.errors import brief as _brief
from .gpu import HEADROOM_BYTES, MIN_USEFUL_BYTES, MiB, TorchCuda, adapt_fraction  # noqa: F401 - old import path
from .gpu import GpuManager

log = logging.getLogger(__name__)
Build = Callable[[str], tuple[Any, EngineInfo]]


def remaining_text(text: str, spoken: list[str]) -> str:
    """What is left of `text` once the chunk texts in `spoken` were said: its speakable form
    less as many words from the start as were spoken (engines may re-split or re-punctuate
    sentences, but they keep the words)."""
    from .text import speakable

    if not spoken:
        return text
    left = sum(1 for t in spoken for w in t.split() if any(c.isalnum() for c in w))
    s = speakable(text)
    for m in re.finditer(r"\S+", s):
        if any(c.isalnum() for c in m.group()):
            if left == 0:
                return s[m.start():]
            left -= 1
    return ""


class RecoveringEngine:
    """An STT or TTS engine that survives the GPU: forwards load/warmup/transcribe/synthesize
    (and any other attribute) to the engine built for the current device, applying the policy."""

    def __init__(self, role: str, build: Build, gpu: GpuManager, wanted: str = "auto"):
        self.role, self.gpu, self.wanted, self._build = role, gpu, wanted, build
        self.preferred, self.device, self.reason, self.degraded = "cpu", "", "", False
        self.counts = {"recoveries": 0, "ooms": 0, "dropped": 0}
        self.last_switch: float | None = None    # wall time of the last device change
        self.switch_s: float | None = None       # how long that change took
        self.reprobe_error: str | None = None    # why the last return to the GPU failed to load
        self._engine: Any = None
        self._info: EngineInfo | None = None
        self._epoch = 0                          # the GPU fault epoch this engine has seen
        self._inflight, self._retired = 0, []    # old engines are closed once no request uses them
        self._lock = threading.RLock()           # one request step at a time uses the engine
        self._switch_lock = threading.Lock()     # one build/switch at a time
        self._state_lock = threading.Lock()      # the fields above, briefly
        gpu.subscribe(self._on_gpu_fault)

    @property
    def info(self) -> EngineInfo | None:
        return self._info

    @property
    def sample_rate(self) -> int:
        return self._engine.sample_rate

    @property
    def state(self) -> dict:
        with self._state_lock:
            return {"role": self.role, "engine": self._info.name if self._info else None, "device": self.device,
                    "preferred": self.preferred, "degraded": self.degraded, "reason": self.reason,
                    **self.counts, "last_switch": self.last_switch, "switch_s": self.switch_s,
                    "reprobe_error": self.reprobe_error}

    def __getattr__(self, name: str):
        if name.startswith("_") or self.__dict__.get("_engine") is None:
            raise AttributeError(name)
        return getattr(self._engine, name)

    def _bump(self, name: str) -> None:
        with self._state_lock:
            self.counts[name] += 1

    def _install(self, engine, info: EngineInfo, device: str, reason: str, started: float | None = None) -> None:
        with self._state_lock:
            old, self._engine, self._info, self.device = self._engine, engine, info, device
            self.degraded = device != self.preferred
            self.reason = reason if self.degraded else ""
            self._epoch = self.gpu.fault_epoch if device == "cuda" else self._epoch
            self.reprobe_error = None if device == "cuda" else self.reprobe_error
            if old is not None:
                self.last_switch, self.switch_s = time.time(), time.monotonic() - started
                self._retired.append(old)
        self._close_retired()

    def _close_retired(self) -> None:
        with self._state_lock:
            retired, self._retired = (self._retired, []) if self._inflight == 0 else ([], self._retired)
        for engine in filter(None, retired):
            try:
                getattr(engine, "close", lambda: None)()
            except Exception as exc:  # noqa: BLE001 - a broken engine may not close cleanly
                log.debug("%s: closing the old engine failed: %s", self.role, exc)

    def close(self) -> None:
        with self._state_lock:
            self._retired.append(self._engine)
            self._engine = None
        self._close_retired()

    # ---- device changes ------------------------------------------------------------
    def load(self) -> EngineInfo:
        with self._switch_lock:
            if self._engine is None:
                self.preferred = self.gpu.preferred(self.wanted)
                device, reason = self.preferred, ""
                if device == "cuda" and not self.gpu.usable:
                    device, reason = "cpu", self.gpu.detail
                try:
                    engine, info = self._build(device)
                except Exception as exc:
                    if device != "cuda" or classify(exc) == "other":
                        raise
                    device, reason = "cpu", f"could not load on cuda ({_brief(exc)})"
                    engine, info = self._build("cpu")
                self._install(engine, info, device, reason)
                if self.degraded:
                    log.warning("%s: starting on %s (%s) instead of %s: %s", self.role, device, info.name,
                                self.preferred, reason)
            return self._info

    def _fall_back(self, reason: str, report: bool) -> None:
        with self._switch_lock:
            if self.device != "cuda":
                return                              # another thread moved it already
            started = time.monotonic()
            if report:
                self.gpu.report_fault(self.role, reason)
            try:
                engine, info = self._build("cpu")
            except Exception as exc:
                with self._state_lock:
                    self.degraded, self.reason = True, f"{reason}; no CPU engine: {_brief(exc)}"
                raise FatalEngineError(f"{self.role}: GPU failed ({reason}) and no CPU engine could "
                                       f"start ({_brief(exc)})") from exc
            self._install(engine, info, "cpu", reason, started)
            self._bump("recoveries")
            log.error("%s: %s; moved to cpu (%s) in %.1f s; the GPU is re-probed every %g s", self.role,
                      reason, info.name, self.switch_s, self.gpu.reprobe_s)

    def _on_gpu_fault(self, source: str, reason: str) -> None:
        if source != self.role and self.device == "cuda":    # rebuild now, off the request path
            threading.Thread(target=self._fall_back_logged, args=(f"GPU fault in {source}: {reason}",),
                             name=f"{self.role}-to-cpu", daemon=True).start()

    def _fall_back_logged(self, reason: str) -> None:
        try:
            self._fall_back(reason, report=False)
        except Exception:
            log.exception("%s: moving to the CPU failed", self.role)

    def reprobe(self) -> bool:
        """Called periodically: back to the preferred device once the GPU works. True if it moved."""
        if not self.degraded or self.preferred != "cuda" or not self._switch_lock.acquire(blocking=False):
            return False
        try:
            if not self.gpu.probe():
                return False
            started, was = time.monotonic(), self.reason
            try:
                engine, info = self._build("cuda")
            except Exception as exc:  # noqa: BLE001 - stay on the CPU, try again next time
                self._reprobe_failed(_brief(exc))
                return False
            self._install(engine, info, "cuda", "", started)
            log.warning("%s: GPU healthy again; back on cuda (%s) in %.1f s (left it for: %s)",
                        self.role, info.name, self.switch_s, was)
            return True
        finally:
            self._switch_lock.release()

    def _reprobe_failed(self, error: str) -> None:
        """The GPU works but this engine did not load on it: kept for status, and said once per
        distinct reason (the re-probe repeats every gpu.reprobe_s)."""
        with self._state_lock:
            repeated, self.reprobe_error = error == self.reprobe_error, error
        if not repeated:
            log.warning("%s: the GPU probe passed but the engine failed to load on cuda (%s); staying on the CPU "
                        "(retried every %g s)", self.role, error, self.gpu.reprobe_s)

    # ---- requests -----------------------------------------------------------------------
    @contextmanager
    def _request(self):
        with self._state_lock:
            self._inflight += 1
        try:
            yield
        finally:
            with self._state_lock:
                self._inflight -= 1
            self._close_retired()

    def _current(self) -> tuple[Any, str]:
        if self._engine is None:
            self.load()
        if self.device == "cuda" and self.gpu.fault_epoch != self._epoch:   # another engine faulted
            self._fall_back(f"GPU fault elsewhere: {self.gpu.fault}", report=False)
        with self._state_lock:
            return self._engine, self.device

    def _recover(self, exc: Exception, device: str, retried: bool) -> bool:
        """After a failed step: True = retry once after OOM, False = retry on the CPU; raises
        when this request must end."""
        kind = classify(exc)
        if kind == "oom" and not retried:
            self._bump("ooms")
            log.warning("%s: out of memory on %s (%s); freeing cached memory and retrying once",
                        self.role, device, _brief(exc))
            if device == "cuda":
                self.gpu.empty_cache()
            return True
        if kind == "oom":
            self._bump("dropped")
            raise OutOfMemory(f"{self.role}: out of memory on {device} again; this request is dropped") from exc
        if kind == "fatal_cuda" and device == "cuda":
            self._fall_back(_brief(exc), report=True)
            return False
        raise exc

    def _run(self, call: Callable[[Any], Any]) -> Any:
        with self._request():
            retried = False
            while True:
                engine, device = self._current()
                try:
                    with self._lock:
                        result = call(engine)
                except Exception as exc:  # noqa: BLE001 - _recover re-raises what it cannot fix
                    retried = self._recover(exc, device, retried)
                    continue
                if retried:
                    self._bump("recoveries")
                return result

    def warmup(self) -> None:
        self._run(lambda engine: engine.warmup())

    def transcribe(self, audio, expect: str = "", language: str = ""):
        return self._run(lambda engine: engine.transcribe(audio, expect, language))

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        """Sentence by sentence. After a failure mid-reply the retry (or the CPU engine) is
        given only what was not yet yielded (see remaining_text): no sentence is said twice."""
        with self._request():
            retried = False
            while text.strip():
                engine, device = self._current()
                gen, spoken, failure = engine.synthesize(text, style), [], None
                try:
                    while not (device == "cuda" and self.device != "cuda"):   # moved off a faulted GPU
                        with self._lock:
                            try:
                                chunk = next(gen)
                            except StopIteration:
                                if retried:
                                    self._bump("recoveries")
                                return
                            except Exception as exc:  # noqa: BLE001 - decided below
                                failure = exc
                                break
                        spoken.append(chunk.text)
                        yield chunk
                finally:
                    gen.close()
                text = remaining_text(text, spoken)
                if failure is not None:
                    retried = self._recover(failure, device, retried)
