"""The GPU as the engines see it: usable or not, voiced's share of its memory, VRAM report, fault broadcast."""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from .engines.errors import brief

log = logging.getLogger(__name__)
MiB = 2 ** 20
MIN_USEFUL_BYTES = 512 * MiB      # a memory limit below this is no GPU worth using
HEADROOM_BYTES = 256 * MiB        # left free when the limit is lowered to what is free


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
    memory_allocated, memory_reserved) plus a probe. Tests pass a fake with these methods."""

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
                    self.detail = f"CUDA unavailable ({brief(exc)})"
                if not self.present:
                    log.info("GPU: %s; models run on the CPU", self.detail)
                elif not self.probe():
                    log.warning("GPU present but not usable: %s; starting on the CPU", self.detail)
            return self.usable

    def probe(self) -> bool:
        """Is the GPU usable now (a real allocation: after a fatal fault the same process usually
        cannot use it again)? Sets the memory limit the first time it is."""
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
            self.usable, self.detail = False, f"GPU probe failed ({brief(exc)})"
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
            out["error"] = brief(exc)
        return out
