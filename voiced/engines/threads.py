"""How many CPU threads the engines use ([models] torch_threads)."""
from __future__ import annotations

import os

from ..config import Settings


def cpu_threads(settings: Settings) -> int:
    """Threads for every CPU engine ([models] torch_threads): 0 = one less than the cores."""
    return settings.models.torch_threads or max(1, (os.cpu_count() or 2) - 1)


def set_torch_threads(settings: Settings) -> int:
    import torch

    threads = cpu_threads(settings)
    torch.set_num_threads(threads)
    return threads
