"""Logging: to journald with structured fields when it is there, and to stderr.

systemd's JournalHandler drops records silently where journald is absent, so stderr is
always a handler too, except when stderr already *is* the journal (a unit's stderr,
JOURNAL_STREAM matches fd 2): then every line would be there twice.
Journal records carry VOICED_TURN and VOICED_STAGE, so `journalctl -u voiced VOICED_TURN=12`
shows one turn.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

# Progress bars from model loading are \r-animated noise in a journal; the log says the same.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_context: Callable[[], tuple[int | None, str]] = lambda: (None, "")  # noqa: E731


def set_context(provider: Callable[[], tuple[int | None, str]]) -> None:
    """The daemon tells the log which turn and stage are current."""
    global _context
    _context = provider


class _TurnFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            turn, stage = _context()
        except Exception:  # noqa: BLE001 - logging must never fail
            turn, stage = None, ""
        record.VOICED_TURN = "" if turn is None else str(turn)
        record.VOICED_STAGE = stage
        return True


def _stderr_is_journal() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, inode = (int(x) for x in stream.split(":"))
        st = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, inode)


def _journal_handler() -> logging.Handler | None:
    if not os.path.exists(JOURNAL_SOCKET):
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="voiced")


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    journal = _journal_handler()
    if journal is not None:
        journal.addFilter(_TurnFields())
        root.addHandler(journal)
    if journal is None or not _stderr_is_journal():
        # Under journald (stderr captured) the journal adds its own timestamps.
        fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
        root.addHandler(stderr)
    for noisy in ("httpx", "httpx2", "urllib3", "filelock", "huggingface_hub", "transformers", "diffusers", "numba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
