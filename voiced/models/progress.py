"""Progress for `voiced models fetch`: a bar on a terminal, a few plain log lines elsewhere.

On a terminal (stderr is a tty and TERM is not "dumb") each download gets a tqdm bar with
bytes, rate and time left; a step of unknown size (a conversion, a download without a
length) gets a spinner with elapsed time (and bytes and rate, for a download). Off a terminal
(systemd, CI, a pipe) the same step logs "started", every 10 % (or every `PLAIN_EVERY_S`
seconds when the size is unknown), and "done" with its size and time, through `logging`.

Helpers for the sources voiced downloads from:
  * `pip_download(args, label, timeout)`: `pip download` with pip's machine-readable
    `--progress-bar raw` lines parsed into one bar per file;
  * `hub_tqdm()`: a tqdm class for huggingface_hub's `tqdm_class=` (per-file bytes);
  * `watch_dir(label, folder)`: the growing size of a folder another process downloads into;
  * `step(label)`: a spinner/elapsed around work of unknown length (conversion, joining).
"""
from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TextIO

log_ = logging.getLogger("voiced.models")

PLAIN_STEP_PERCENT = 10     # off a terminal: one line per 10 % of a known size
PLAIN_EVERY_S = 10.0        # off a terminal, unknown size: one line this often
SPINNER = "|/-\\"


def interactive(stream: TextIO | None = None) -> bool:
    """Whether progress bars make sense on `stream` (default stderr, where they are drawn)."""
    stream = stream if stream is not None else sys.stderr
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):   # closed or not a real stream
        return False


def _columns() -> int:
    """The terminal's width (80 where it reports none, e.g. a fresh pseudo-terminal)."""
    import shutil

    return min(shutil.get_terminal_size((80, 24)).columns, 120)


def _rows() -> int:
    import shutil

    return max(shutil.get_terminal_size((80, 24)).lines, 2)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


class Progress:
    """One download or conversion: `update(n)`/`set(done)`, then `close()` (or use `with`).

    `unit="B"` counts bytes; `unit=""` is a step without a size (elapsed time only)."""

    def __init__(self, label: str, total: int | None = None, *, unit: str = "B",
                 tty: bool | None = None, stream: TextIO | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.label, self.unit = label, unit
        self.total = total if total else None
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = interactive(self.stream) if tty is None else tty
        self.log = log or log_.info
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False
        self._next_percent = PLAIN_STEP_PERCENT
        self._next_time = self.started + PLAIN_EVERY_S
        self._spin = 0
        self._bar = self._make_bar() if self.tty else None
        if not self.tty:
            size = f" ({human_bytes(self.total)})" if self.total and unit == "B" else ""
            self.log(f"{label}: started{size}")
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    # ------------------------------------------------------------ terminal bar
    def _bar_format(self) -> str:
        if self.total and self.unit == "B":
            return "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{rate_fmt}, {remaining} left]"
        if self.unit == "B":   # size unknown: spinner, bytes so far, rate, elapsed
            return "{desc} {n_fmt}B [{rate_fmt}, {elapsed}]"
        return "{desc} {elapsed} elapsed"

    def _desc(self, mark: str | None = None) -> str:
        if self.total:
            return self.label
        return f"{self.label}: {mark if mark is not None else SPINNER[self._spin]}"

    def _make_bar(self):
        from tqdm import tqdm

        return tqdm(desc=self._desc(), total=self.total, unit=self.unit or "it", unit_scale=self.unit == "B",
                    unit_divisor=1024, file=self.stream, disable=False, ncols=_columns(), nrows=_rows(),
                    mininterval=0.1, leave=True, bar_format=self._bar_format())

    # ------------------------------------------------------------ updates
    def update(self, n: int = 1) -> None:
        self.set(self.done + n)

    def set(self, done: int) -> None:
        with self._lock:
            if self._closed:
                return
            step, self.done = done - self.done, done
            if self._bar is not None:
                self._bar.update(step)
            else:
                self._plain_progress()

    def set_total(self, total: int | None) -> None:
        with self._lock:
            if self._closed or not total or total == self.total:
                return
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.bar_format = self._bar_format()
                self._bar.set_description_str(self._desc(), refresh=False)
                self._bar.refresh()

    def _plain_progress(self) -> None:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            percent = 100.0 * self.done / self.total
            if percent < self._next_percent or percent >= 100:
                return
            while self._next_percent <= percent:
                self._next_percent += PLAIN_STEP_PERCENT
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = human_seconds(left) if left != float("inf") else "?"
            self.log(f"{self.label}: {percent:.0f} % ({human_bytes(self.done)} of {human_bytes(self.total)}, "
                     f"{human_bytes(rate)}/s, {eta} left)")
        elif now >= self._next_time:
            self._next_time = now + PLAIN_EVERY_S
            if self.unit == "B":
                self.log(f"{self.label}: {human_bytes(self.done)} so far ({human_bytes(rate)}/s, "
                         f"{human_seconds(elapsed)})")
            else:
                self.log(f"{self.label}: still running ({human_seconds(elapsed)})")

    def _tick(self) -> None:
        """Keeps a spinner and the elapsed time moving while no data comes (terminal), and the
        periodic line of a step of unknown size (plain)."""
        while not self._stop.wait(0.1 if self.tty else 0.5):
            with self._lock:
                if self._closed:
                    return
                if self._bar is not None:
                    if not self.total:
                        self._spin = (self._spin + 1) % len(SPINNER)
                        self._bar.set_description_str(self._desc(), refresh=False)
                    self._bar.refresh()
                elif not self.total:
                    self._plain_progress()

    # ------------------------------------------------------------ end
    def close(self, ok: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._ticker is not threading.current_thread():
            self._ticker.join(timeout=1.0)
        elapsed = time.monotonic() - self.started
        if self._bar is not None:
            if ok and self.total and self.done < self.total:
                self._bar.update(self.total - self.done)
            if not self.total:
                self._bar.set_description_str(self._desc("done" if ok else "failed"), refresh=False)
            self._bar.close()
            return
        if not ok:
            self.log(f"{self.label}: failed after {human_seconds(elapsed)}")
        elif self.unit == "B" and self.done:
            rate = self.done / max(elapsed, 1e-6)
            self.log(f"{self.label}: done, {human_bytes(self.done)} in {human_seconds(elapsed)} "
                     f"({human_bytes(rate)}/s)")
        else:
            self.log(f"{self.label}: done in {human_seconds(elapsed)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


@contextmanager
def step(label: str, **kwargs) -> Iterator[Progress]:
    """A step of unknown length (a conversion): spinner and elapsed time, or start/done lines."""
    with Progress(label, None, unit="", **kwargs) as progress:
        yield progress


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:     # renamed or removed while we looked
                pass
    return total


@contextmanager
def watch_dir(label: str, folder: Path, total: int | None = None, interval: float = 0.25,
              **kwargs) -> Iterator[Progress]:
    """Progress of another process that downloads into `folder`: its size, polled."""
    folder = Path(folder)
    base = _folder_bytes(folder)
    progress = Progress(label, total, **kwargs)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            progress.set(max(0, _folder_bytes(folder) - base))

    watcher = threading.Thread(target=poll, name="progress-watch", daemon=True)
    watcher.start()
    ok = False
    try:
        yield progress
        ok = True
    finally:
        stop.set()
        watcher.join(timeout=2.0)
        if ok:
            progress.set(max(0, _folder_bytes(folder) - base))
        progress.close(ok=ok)


# ---------------------------------------------------------------- pip download

_DOWNLOADING = re.compile(r"^\s*Downloading (\S+)(?: \(([\d.]+) (k?B|[KMGT]i?B)\))?")
_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")
_CACHED = re.compile(r"^\s*(?:Using cached|File was already downloaded) (\S+)")
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def pip_download(args: list[str], label: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """`python -m pip download ARGS` with a bar per file. Returns the finished process (stdout,
    stderr as text) like subprocess.run; raises subprocess.TimeoutExpired after `timeout` s.
    `args` must not hold -q: pip reports no progress when quiet."""
    cmd = [sys.executable, "-m", "pip", "download", "--progress-bar", "raw", *args]
    proc = _run_pip(cmd, label, timeout, **kwargs)
    if proc.returncode != 0 and "raw" in proc.stderr and "invalid choice" in proc.stderr:
        # An old pip (before 24.1) without raw progress: a spinner per file instead.
        proc = _run_pip([c for c in cmd if c not in ("--progress-bar", "raw")], label, timeout, **kwargs)
    return proc


def _size(number: str | None, unit: str | None) -> int | None:
    if not number or not unit:
        return None
    return int(float(number) * _UNITS.get(unit, 1))


def _run_pip(cmd: list[str], label: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    out = io.StringIO()
    bar: Progress | None = None
    try:
        for line in proc.stdout:
            out.write(line)
            if (m := _PROGRESS.match(line)) and bar is not None:
                bar.set_total(int(m.group(2)) or None)
                bar.set(int(m.group(1)))
            elif m := _DOWNLOADING.match(line):
                if bar is not None:
                    bar.close()
                name = m.group(1).rsplit("/", 1)[-1]
                bar = Progress(f"{label}: {name}", _size(m.group(2), m.group(3)), **kwargs)
            elif m := _CACHED.match(line):
                (kwargs.get("log") or log_.info)(f"{label}: {m.group(1).rsplit('/', 1)[-1]} from pip's cache")
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5.0)
        if bar is not None:
            bar.close(ok=proc.returncode == 0 and not timed_out.is_set())
    if timed_out.is_set():
        raise subprocess.TimeoutExpired(cmd, timeout, out.getvalue(), "".join(err))
    return subprocess.CompletedProcess(cmd, proc.returncode, out.getvalue(), "".join(err))


# ---------------------------------------------------------------- huggingface_hub

@contextmanager
def hub_progress(label: str) -> Iterator[type]:
    """A tqdm class for huggingface_hub's `tqdm_class=` (hf_hub_download, snapshot_download).

    On a terminal: huggingface_hub's own bars, shown although voiced sets
    HF_HUB_DISABLE_PROGRESS_BARS for the daemon (voiced/logs.py); a class of our own is not
    subject to it. Off a terminal: plain lines for the bytes (per file for hf_hub_download,
    the whole snapshot for snapshot_download). Bars still open at the end are closed here
    (snapshot_download leaves its own to the garbage collector)."""
    from tqdm import tqdm

    opened: list = []
    failed = [False]

    class HubBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            desc = kwargs.get("desc") or ""
            if "/" in desc:    # a URL where the server named no file: its last part
                kwargs["desc"] = desc = desc.rsplit("/", 1)[-1]
            self._plain: Progress | None = None
            if interactive():
                kwargs.update(disable=False, file=sys.stderr, ncols=_columns(), nrows=_rows())
                super().__init__(*args, **kwargs)
                opened.append(self)
                return
            super().__init__(*args, **{**kwargs, "disable": True})
            self.n = kwargs.get("initial", 0) or 0
            # snapshot_download draws a file-count bar and two byte bars: "Downloading bytes"
            # (network, with a guessed total) and "Reconstructing" (to disk, the true sizes).
            if kwargs.get("unit") == "B" and desc != "Downloading bytes":
                name = label if desc.startswith("Reconstructing") or not desc else f"{label}: {desc}"
                self._plain = Progress(name, int(self.total or 0) or None, tty=False)
                self._plain.set(int(self.n))
                opened.append(self)

        def update(self, n=1):
            if self._plain is None:
                return super().update(n)
            self.n += n or 0
            self._plain.set_total(int(self.total or 0) or None)
            self._plain.set(int(self.n))
            return None

        def close(self):
            if self._plain is not None:
                self._plain.close(ok=not failed[0])
            super().close()

    try:
        yield HubBar
    except BaseException:
        failed[0] = True
        raise
    finally:
        for bar in opened:
            bar.close()
