"""Transcribe at a pause, before the end-pointer is sure the request is over.

The end-pointer waits [vad] silence_s (0.8 s) of silence before it ends a request, and Whisper
then needs about a second on a small CPU. Starting Whisper once the silence has lasted
[vad] early_transcribe_s (0.3 s) overlaps the two: if the silence goes on to end the request,
that transcript is used (what came after it was silence); if the user speaks again, it is
thrown away and the final audio is transcribed as usual. The cost: a pause followed by more
speech runs Whisper for nothing, and the final transcription may wait behind it for the
engine's lock (up to one transcription, ~0.5 s with faster-whisper on a small CPU).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .engines.base import Transcript


class EarlyTranscript:
    def __init__(self, speech_end_s: float, job: Callable[[], Transcript | None]):
        self.key = speech_end_s           # which speech it covers: the end of its last speech frame
        self.started = time.monotonic()
        self.finished: float | None = None
        self.decided_at = self.started    # set when the end-pointer ends the request
        self._done = threading.Event()
        self._value: Transcript | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(job,), name="early-stt", daemon=True).start()

    def _run(self, job) -> None:
        try:
            self._value = job()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
            self._error = exc
        finally:
            self.finished = time.monotonic()
            self._done.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def result(self) -> Transcript | None:
        """Wait for it (the caller bounds the wait); None if the audio was not worth transcribing."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
