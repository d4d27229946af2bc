"""Logging to stderr: journald captures a unit's stderr, and systemd's JournalHandler alone
would drop records silently where journald is absent. Under journald, no timestamps
(the journal adds its own)."""
from __future__ import annotations

import logging
import os
import sys

# Progress bars from model loading are \r-animated noise in a journal; the log says the same.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else \
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
    root.addHandler(stderr)
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "transformers", "diffusers", "numba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
