"""Which kind of failure an engine error is: out of GPU memory, a fatal CUDA fault, or other."""
from __future__ import annotations

import re
import sys
from typing import Literal

from .base import OutOfMemory

Kind = Literal["oom", "fatal_cuda", "other"]

_OOM = re.compile(r"cuda out of memory|cuda error: out of memory|cublas_status_alloc_failed|"
                  r"cublas_status_not_initialized|cudnn_status_alloc_failed", re.IGNORECASE)
_FATAL = re.compile(r"cuda error|cuda driver error|cuda runtime error|illegal memory access|"
                    r"device-side assert|unspecified launch failure|misaligned address|illegal instruction|"
                    r"device lost|gpu is lost|fallen off the bus|no cuda-capable device|no cuda gpus|"
                    r"no nvidia driver|uncorrectable ecc|launch timed out|"
                    r"(?:cudnn|cublas)_status_(?:execution_failed|internal_error|mapping_error)", re.IGNORECASE)


def brief(exc: BaseException) -> str:
    """The error's type and the first line of its message, for logs and status."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def classify(exc: BaseException) -> Kind:
    """"oom", "fatal_cuda" or "other" for an error (torch's own, or base.OutOfMemory /
    EngineError wrapping one), looking through the causes engines chain. OOM is local (free the
    cache, retry once); after an illegal memory access, a device-side assert, a launch failure
    or a lost device the CUDA context can no longer be trusted, so engines leave the GPU."""
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
