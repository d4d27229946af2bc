"""The one thread that plays: replies and earcons go through it in order, never two at once.

Before, earcon threads and the reply shared Playback's stop flag and "playing" state: whichever
ended first cleared the other's and told the echo guard the reply had ended in the middle of it.
Here every play is a job with its own stop event; stop(tag) cuts the job playing for that tag
and drops its queued ones, even before they start.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .playback import Playback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlayResult:
    played_s: float
    cut: bool          # stopped before the end (barge-in, cancel, shutdown)
    ok: bool           # the device worked
    detail: str


@dataclass
class _Job:
    chunks: Iterable
    on_first_audio: Callable[[], None] | None
    level: bool
    tag: object
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: PlayResult | None = None


class Speaker:
    def __init__(self, playback: Playback):
        self.playback = playback
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued: list[_Job] = []
        self._current: _Job | None = None
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._current is not None or bool(self._queued)

    def play(self, chunks: Iterable, on_first_audio: Callable[[], None] | None = None, tag: object = None,
             level: bool = True) -> PlayResult:
        """Play and wait until done or cut (called from a turn worker)."""
        job = self._submit(chunks, on_first_audio, level, tag)
        job.done.wait()
        return job.result or PlayResult(0.0, True, self.playback.ok, self.playback.detail)

    def cue(self, chunk) -> None:
        """An earcon, without waiting; skipped while anything plays or waits (never over a reply)."""
        if chunk is None or self.busy:
            return
        self._submit([chunk], None, False, "earcon")

    def stop(self, tag: object = None) -> None:
        """Cut the job(s) of `tag` (None: everything), playing or still queued."""
        with self._lock:
            for job in self._queued:
                if tag is None or job.tag == tag:
                    job.stop.set()
            current = self._current
        if current is not None and (tag is None or current.tag == tag):
            self.playback.stop(current.stop)   # that job's own event; Playback times the cut

    def close(self, timeout: float = 2.0) -> None:
        self.stop()
        self._jobs.put(None)
        self._thread.join(timeout)

    def _submit(self, chunks, on_first_audio, level, tag) -> _Job:
        job = _Job(chunks, on_first_audio, level, tag)
        with self._lock:
            self._queued.append(job)
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self._queued.remove(job)
                self._current = job
            try:
                if job.stop.is_set():
                    job.result = PlayResult(0.0, True, self.playback.ok, self.playback.detail)
                else:
                    played = self.playback.play(job.chunks, on_first_audio=job.on_first_audio,
                                                level=job.level, stop=job.stop)
                    job.result = PlayResult(played, job.stop.is_set(), self.playback.ok, self.playback.detail)
            except Exception:  # noqa: BLE001 - one bad job must not end the speaker
                log.exception("speaker: playing failed")
                job.result = PlayResult(0.0, False, False, "internal error while playing")
            finally:
                with self._lock:
                    self._current = None
                job.done.set()
