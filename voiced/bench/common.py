"""Shared helpers for `voiced bench`: summaries, process CPU/RSS, test speech, WER, reply texts.

Every figure is a median and p95 over repeats, taken after warm-up. On a small shared CPU the
absolute numbers are noisy; ratios between two paths measured in the same run are what counts.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from itertools import count
from pathlib import Path

import numpy as np

RATE = 16_000
FRAME = 1280                       # 80 ms at 16 kHz: what capture delivers
REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"             # only present in a source checkout
JFK = TESTS / "data" / "jfk_16k.flac"
JFK_REFERENCE = ("And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country.")


class Skip(Exception):
    """A part cannot run here (missing tool, data or weights); the message says why."""


def summary(values) -> dict:
    """median/p95/min/max/n of a list of numbers (seconds, ratios, percents), rounded."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"median": None, "p95": None, "min": None, "max": None, "n": 0, "values": []}
    r = lambda x: round(float(x), 4)
    return {"median": r(np.median(arr)), "p95": r(np.percentile(arr, 95)), "min": r(arr.min()),
            "max": r(arr.max()), "n": int(arr.size),
            "values": [r(v) for v in arr] if arr.size <= 50 else "omitted (n > 50)"}


def ratio(a: dict | float | None, b: dict | float | None) -> float | None:
    """a / b on medians (or plain numbers); None when either is missing."""
    a = a.get("median") if isinstance(a, dict) else a
    b = b.get("median") if isinstance(b, dict) else b
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


# ---- process measurements ---------------------------------------------------------------
def proc_cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children(pid: int) -> list[int]:
    """Direct child processes of pid (e.g. the Piper worker of a daemon)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_share(pid: int, seconds: float) -> float:
    """Percent of one core a process used over `seconds` of wall time."""
    c0, t0 = proc_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (proc_cpu_s(pid) - c0) / (time.monotonic() - t0)


# ---- audio ------------------------------------------------------------------------------
def espeak(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    """espeak-ng speech as 16 kHz mono int16."""
    from voiced.audio.dsp import resample

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise Skip("espeak-ng is not installed (apt-get install espeak-ng)")
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = resample(audio.mean(axis=1), rate, RATE)
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def noise(seconds: float, dbfs: float = -65.0, seed: int = 0) -> np.ndarray:
    """A quiet microphone's noise floor (white, int16)."""
    n = np.random.default_rng(seed).normal(size=round(seconds * RATE))
    n = n / np.sqrt(np.mean(n ** 2)) * 32768 * 10 ** (dbfs / 20)
    return np.clip(np.round(n), -32768, 32767).astype(np.int16)


def speech_bounds(audio: np.ndarray, rel: float = 0.02) -> tuple[float, float]:
    """(first, last) seconds where |sample| exceeds `rel` of the clip's peak."""
    mag = np.abs(np.asarray(audio, dtype=np.float64))
    loud = np.nonzero(mag > rel * mag.max())[0]
    return loud[0] / RATE, (loud[-1] + 1) / RATE


def frames(audio: np.ndarray, size: int = FRAME):
    audio = np.asarray(audio, dtype=np.int16)
    pad = (-len(audio)) % size
    if pad:
        audio = np.concatenate([audio, np.zeros(pad, dtype=np.int16)])
    for start in range(0, len(audio), size):
        yield audio[start:start + size]


def jfk() -> np.ndarray:
    """tests/data/jfk_16k.flac as float32 (11 s of human speech)."""
    if not JFK.is_file():
        raise Skip(f"{JFK} not found: the STT part needs a source checkout of voiced")
    import soundfile as sf

    audio, rate = sf.read(JFK, dtype="float32")
    if rate != RATE or audio.ndim != 1:
        raise Skip(f"{JFK}: expected 16 kHz mono")
    return audio


# ---- text -------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).replace("'", "").split()


def word_edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level edit distance (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance / reference words (same normalisation as the tests)."""
    ref = words(reference)
    return round(word_edits(ref, words(hypothesis)) / max(1, len(ref)), 4)


_TEMPLATES = (
    "The forecast for {city} says light rain, with a high of {n} degrees.",
    "Your next meeting starts in {n} minutes, in the small room on the second floor.",
    "I have added {n} eggs and a loaf of bread to the shopping list for {city}.",
    "The train to {city} leaves from platform {n}, about ten minutes from now.",
    "Timer number {n} is set, and I will remind you when it goes off.",
    "There are {n} new messages, most of them from your colleagues in {city}.",
)
_CITIES = ("Berlin", "Lisbon", "Toronto", "Osaka", "Denver", "Nairobi", "Oslo", "Perth")
_serial = count()


def reply_text(sentences: int, rep: int = 0) -> str:
    """A reply of that many ordinary sentences (templates picked by `rep`, so two calls with the
    same arguments have the same shape), never the same text twice in a run: a cache of
    synthesised phrases must not turn a measurement into a lookup."""
    out = []
    for i in range(sentences):
        k = next(_serial)                  # 79 two-word numbers x 8 cities: 632 distinct before a repeat
        out.append(_TEMPLATES[(rep + i) % len(_TEMPLATES)].format(n=21 + k % 79, city=_CITIES[k % len(_CITIES)]))
    return " ".join(out)
