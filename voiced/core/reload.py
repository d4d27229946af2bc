"""What a config reload needs beyond swapping settings: which changes need new models, and
handing replaced models' memory back."""
from __future__ import annotations


def give_memory_back() -> None:
    """The replaced models' memory goes back to the system, not to glibc's free lists."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc
        pass


def models_of(wake) -> tuple:
    """What a wake detector loads: a change here needs new models, anything else is tuning."""
    return (wake.engine, wake.wyoming_uri, tuple(wake.models))


def retune(detector, wake) -> None:
    """New thresholds and timings for a loaded detector (local, or a remote one's fallback)."""
    for d in (detector, getattr(detector, "local", None)):
        if d is not None and hasattr(d, "settings"):
            d.settings = wake
