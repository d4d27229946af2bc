"""The one owner of device choice for the model engines: CUDA when it works, a retry after
running out of GPU memory, the CPU after a fatal CUDA error, and a re-probe that returns.

Engines raise (torch's own errors, or base.OutOfMemory / EngineError wrapping them);
`classify` reads them the way the field does: OOM is local (free the cache, retry once),
while after an illegal memory access, a device-side assert, a launch failure or a lost
device the CUDA context can no longer be trusted, so both engines move to the CPU. A fault
of that kind is "sticky" on real hardware: the same process usually cannot use the GPU
again, so `reprobe` returns in-process only when the probe really works (the daemon may
prefer a restart to get the GPU back). CUDA is reached through a small object (`TorchCuda`)
that tests replace with a fake; nothing private is patched.
"""
from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from .engines.base import PLAIN, EngineInfo, FatalEngineError, OutOfMemory, SpeechChunk, VoiceStyle

log = logging.getLogger(__name__)
MiB = 2 ** 20
MIN_USEFUL_BYTES = 512 * MiB      # a memory limit below this is no GPU worth using
HEADROOM_BYTES = 256 * MiB        # left free when the limit is lowered to what is free
Kind = Literal["oom", "fatal_cuda", "other"]
Build = Callable[[str], tuple[Any, EngineInfo]]

_OOM = re.compile(r"cuda out of memory|cuda error: out of memory|cublas_status_alloc_failed|"
                  r"cublas_status_not_initialized|cudnn_status_alloc_failed", re.IGNORECASE)
_FATAL = re.compile(r"cuda error|cuda driver error|cuda runtime error|illegal memory access|"
                    r"device-side assert|unspecified launch failure|misaligned address|illegal instruction|"
                    r"device lost|gpu is lost|fallen off the bus|no cuda-capable device|no cuda gpus|"
                    r"no nvidia driver|uncorrectable ecc|launch timed out|"
                    r"(?:cudnn|cublas)_status_(?:execution_failed|internal_error|mapping_error)", re.IGNORECASE)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def classify(exc: BaseException) -> Kind:
    """"oom", "fatal_cuda" or "other" for an error, looking through the causes engines chain."""
    torch = sys.modules.get("torch")      # not imported: the error cannot be torch's
    oom_types: tuple[type, ...] = (OutOfMemory,) + ((torch.cuda.OutOfMemoryError,) if torch else ())
    fatal_types: tuple[type, ...] = (torch.AcceleratorError,) if hasattr(torch, "AcceleratorError") else ()
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, oom_types) or _OOM.search(str(e)):
            return "oom"
        if isinstance(e, fatal_types) or _FATAL.search(str(e)):
            return "fatal_cuda"
        e = e.__cause__ or e.__context__
    return "other"


def adapt_fraction(requested: float, free: int, total: int, headroom: int = HEADROOM_BYTES) -> float:
    """The share of the GPU this process may allocate: the configured fraction, lowered to
    what is free at start (less `headroom`) when another program holds the rest; 0.0 when
    nothing is left. Rounded down, so the limit never exceeds what was asked or free."""
    if total <= 0:
        return 0.0
    share = min(requested, (free - headroom) / total)
    return max(0.0, math.floor(share * 10_000) / 10_000)


class TorchCuda:
    """torch.cuda (is_available, mem_get_info, set_per_process_memory_fraction, empty_cache,
    memory_allocated, memory_reserved) plus a probe. Tests pass an object with these methods."""

    def __getattr__(self, name: str):
        import torch
        return getattr(torch.cuda, name)

    def probe(self) -> None:
        """A tiny allocation and computation, synchronised: raises if the GPU is not usable."""
        import torch
        if int(torch.arange(1024, device="cuda", dtype=torch.float32).sum().item()) != 523_776:
            raise RuntimeError("CUDA probe computed a wrong result")
        torch.cuda.synchronize()

    def device_name(self) -> str:
        return self.get_device_name(0)


class GpuManager:
    """Whether the GPU is usable, its memory limit and VRAM report, and fault broadcast."""

    def __init__(self, settings, cuda=None):
        self.requested_fraction = settings.gpu.memory_fraction
        self.reprobe_s = settings.gpu.reprobe_s
        self.cuda = cuda if cuda is not None else TorchCuda()
        self.present = self.usable = False
        self.fraction: float | None = None
        self.name, self.detail = "", "not probed yet"
        self.fault: str | None = None          # the last fatal error reported, until a probe works
        self.fault_epoch = 0
        self._started = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, str], None]] = []

    def start(self) -> bool:
        """Probe once and set the memory limit (later calls return the first answer)."""
        with self._lock:
            if not self._started:
                self._started = True
                try:
                    self.present, self.detail = bool(self.cuda.is_available()), "no CUDA device"
                except Exception as exc:  # noqa: BLE001 - a broken CUDA install means "no CUDA"
                    self.detail = f"CUDA unavailable ({_brief(exc)})"
                if not self.present:
                    log.info("GPU: %s; models run on the CPU", self.detail)
                elif not self.probe():
                    log.warning("GPU present but not usable: %s; starting on the CPU", self.detail)
            return self.usable

    def probe(self) -> bool:
        """Is the GPU usable now? Sets the memory limit the first time it is."""
        try:
            if not self.cuda.is_available():
                raise RuntimeError("no CUDA device")
            self.cuda.probe()
            if self.fraction is None:
                self.name = self.cuda.device_name()
                free, total = self.cuda.mem_get_info()
                fraction = adapt_fraction(self.requested_fraction, free, total)
                if fraction * total < MIN_USEFUL_BYTES:
                    raise RuntimeError(f"only {free / MiB:.0f} MiB of {total / MiB:.0f} MiB free")
                self.cuda.set_per_process_memory_fraction(fraction)
                self.fraction = fraction
                lowered = f", lowered from {self.requested_fraction} (only {free / 2**30:.1f} GiB free)" \
                    if fraction < self.requested_fraction else ""
                log.info("GPU %s: %.1f GiB; voiced may use %.2f of it (%.1f GiB)%s", self.name, total / 2**30,
                         fraction, fraction * total / 2**30, lowered)
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable now"
            self.usable, self.detail = False, f"GPU probe failed ({_brief(exc)})"
            return False
        self.usable, self.detail, self.fault = True, f"{self.name} usable", None
        return True

    def preferred(self, wanted: str) -> str:
        """The device an engine configured with `wanted` ("auto", "cuda", "cpu") should use."""
        self.start()
        return wanted if wanted in ("cpu", "cuda") else ("cuda" if self.present else "cpu")

    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        self._listeners.append(listener)

    def report_fault(self, source: str, reason: str) -> None:
        """A fatal CUDA error in one engine: the others must leave the GPU too."""
        with self._lock:
            self.fault, self.usable = reason, False
            self.fault_epoch += 1
            self.detail = f"fault in {source}: {reason}"
        for listener in list(self._listeners):
            listener(source, reason)

    def empty_cache(self) -> None:
        try:
            self.cuda.empty_cache()
        except Exception as exc:  # noqa: BLE001 - a poisoned context cannot free anything
            log.debug("empty_cache failed: %s", exc)

    def vram(self) -> dict | None:
        """For status and doctor: None without a GPU."""
        if not self.present:
            return None
        out = {"name": self.name, "usable": self.usable, "detail": self.detail, "fault": self.fault,
               "fraction": self.fraction, "requested_fraction": self.requested_fraction}
        try:
            free, total = self.cuda.mem_get_info()
            out.update(total_mb=round(total / MiB), used_mb=round((total - free) / MiB),
                       limit_mb=round(self.fraction * total / MiB) if self.fraction else None,
                       allocated_mb=round(self.cuda.memory_allocated() / MiB),
                       reserved_mb=round(self.cuda.memory_reserved() / MiB))
        except Exception as exc:  # noqa: BLE001 - after a fault the driver may refuse
            out["error"] = _brief(exc)
        return out


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
                    **self.counts, "last_switch": self.last_switch, "switch_s": self.switch_s}

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
                log.debug("%s: GPU probe passed but the engine did not load: %s", self.role, _brief(exc))
                return False
            self._install(engine, info, "cuda", "", started)
            log.warning("%s: GPU healthy again; back on cuda (%s) in %.1f s (left it for: %s)",
                        self.role, info.name, self.switch_s, was)
            return True
        finally:
            self._switch_lock.release()

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

    def transcribe(self, audio):
        return self._run(lambda engine: engine.transcribe(audio))

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


def with_device(settings, section: str, **update):
    return settings.model_copy(update={section: getattr(settings, section).model_copy(update=update)})


def tts_settings_for(settings, device: str, fallback: bool):
    """TTS settings for `device`. On a CPU taken as a fallback, Chatterbox only if
    chatterbox_on_cpu (else the factory's fast CPU choice: Piper, then espeak-ng)."""
    update = {"device": device}
    if fallback and device == "cpu" and settings.tts.engine == "chatterbox":
        update["engine"] = "auto"     # auto on a CPU honours chatterbox_on_cpu
    return with_device(settings, "tts", **update)


def recovering_stt(settings, gpu: GpuManager) -> tuple[RecoveringEngine, EngineInfo]:
    from .engines.factory import make_stt

    engine = RecoveringEngine("stt", lambda device: make_stt(with_device(settings, "stt", device=device)),
                              gpu, settings.stt.device)
    return engine, engine.load()


def recovering_tts(settings, gpu: GpuManager) -> tuple[RecoveringEngine, EngineInfo]:
    from .engines.factory import make_tts

    def build(device: str):
        return make_tts(tts_settings_for(settings, device, fallback=device != engine.preferred))

    engine = RecoveringEngine("tts", build, gpu, settings.tts.device)
    return engine, engine.load()


def reprobe_forever(engines: list[RecoveringEngine], interval_s: float, stop: threading.Event) -> None:
    """Body of the daemon's re-probe thread: engines that left the GPU try to return."""
    while not stop.wait(interval_s):
        for engine in engines:
            try:
                engine.reprobe()
            except Exception:
                log.exception("%s: re-probe failed", engine.role)
