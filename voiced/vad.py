"""Voice activity and end-pointing: when did the user start, and stop, speaking?

A VAD turns each 80 ms frame (16 kHz int16) into a speech probability; the Endpointer turns
those into events. Every timer counts samples fed (audio time), never wall time, so the same
recording always ends at the same place. End of speech = decision time - silence hangover.

Two ways to decide that a request is over ([vad] end_of_turn):
- "silence": silence_s of silence after speech. Simple, but a speaker who pauses to think
  ("set a timer for... ten minutes") is cut off, and every answer waits silence_s.
- "semantic": at each pause of pause_s the end-of-turn model (end_of_turn.py, Smart Turn)
  hears the request so far and says whether it sounds finished; "complete" ends it at once,
  "not done" waits for more speech or incomplete_silence_s of silence. The model call is part
  of the decision, so it runs here, synchronously (~25 ms, once per pause): the same
  recording still always ends at the same place.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

from voiced.engines.base import FatalEngineError
from voiced.config import VadSettings
from voiced.models.openwakeword_assets import SILERO_VAD

SAMPLE_RATE = 16_000


class Vad(Protocol):
    name: str

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability (0..1) of one frame of int16 audio."""

    def reset(self) -> None:
        """Forget the stream so far (between requests)."""


def _int16(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if np.issubdtype(frame.dtype, np.floating):
        return (np.clip(frame.reshape(-1), -1.0, 1.0) * 32767).astype(np.int16)
    return frame.astype(np.int16, copy=False).reshape(-1)


class SileroVad:
    """Silero VAD (the v4 ONNX with h/c LSTM state that openWakeWord ships) on onnxruntime.

    Runs 512-sample windows (Silero's size for 16 kHz), carrying the remainder between frames;
    a frame's probability is the highest of the windows that ended in it, so a short onset in
    either half of the frame counts.
    """
    name = "silero"
    WINDOW = 512

    def __init__(self, model_path: Path, threads: int = 1):
        import onnxruntime as ort

        started = time.perf_counter()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        inputs = {i.name for i in self._session.get_inputs()}
        if inputs != {"input", "sr", "h", "c"}:
            # Silero v5 uses one "state" input and needs a context window: not this model.
            raise ValueError(f"{model_path}: unsupported Silero VAD signature {sorted(inputs)}; "
                             f"expected the v4 model (input, sr, h, c)")
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.load_s = time.perf_counter() - started
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((2, 1, 64), dtype=np.float32)
        self._c = np.zeros((2, 1, 64), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._last = 0.0

    def probability(self, frame: np.ndarray) -> float:
        audio = _int16(frame).astype(np.float32) / 32768.0
        buf = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        best, start = None, 0
        while len(buf) - start >= self.WINDOW:
            window = buf[start:start + self.WINDOW][None, :]
            out, self._h, self._c = self._session.run(
                None, {"input": window, "sr": self._sr, "h": self._h, "c": self._c})
            p = float(out[0, 0])
            best = p if best is None else max(best, p)
            start += self.WINDOW
        self._pending = buf[start:].copy()
        if best is not None:   # a frame shorter than a window repeats the last verdict
            self._last = best
        return self._last


class EnergyVad:
    """Dependency-free fallback: level above an adaptive noise floor.

    The floor follows quieter frames at once and rises slowly (so steady fan noise is learnt
    as background but speech is not); probability is 0.5 at max(floor + margin, min level)
    and reaches 0/1 `soft_db` below/above it. It cannot tell loud noise from speech.
    """
    name = "energy"

    def __init__(self, min_dbfs: float = -50.0, margin_db: float = 12.0, soft_db: float = 6.0,
                 floor_rise_db_per_s: float = 3.0):
        self.min_dbfs, self.margin_db, self.soft_db = min_dbfs, margin_db, soft_db
        self.rise_per_s = floor_rise_db_per_s
        self.floor_dbfs = min_dbfs - margin_db
        self.load_s = 0.0

    def reset(self) -> None:
        """Keeps the noise floor: it describes the room, not one request."""

    def probability(self, frame: np.ndarray) -> float:
        audio = _int16(frame).astype(np.float64)
        if not len(audio):
            return 0.0
        level = 10 * math.log10(float(np.mean(audio * audio)) / 32768.0 ** 2 + 1e-12)
        ref = max(self.floor_dbfs + self.margin_db, self.min_dbfs)
        prob = min(1.0, max(0.0, 0.5 + (level - ref) / (2 * self.soft_db)))
        rise = self.rise_per_s * len(audio) / SAMPLE_RATE
        self.floor_dbfs = level if level < self.floor_dbfs else min(level, self.floor_dbfs + rise)
        return prob


def make_vad(settings: VadSettings, models_path: Path) -> Vad:
    """The configured VAD; `models_path` is the openWakeWord assets folder (for Silero)."""
    if settings.engine == "energy":
        return EnergyVad()
    path = Path(models_path) / SILERO_VAD
    if not path.is_file():
        raise FatalEngineError(f"{path} is missing: run `voiced models fetch` (or set vad.engine = \"energy\")")
    return SileroVad(path)


class EndpointKind(str, Enum):
    SPEECH_STARTED = "speech_started"
    END = "end"                  # speech, then the end of the turn (model or silence)
    NO_SPEECH = "no_speech"      # nothing said within no_speech_timeout_s
    MAX_LENGTH = "max_length"    # request reached max_s

    @property
    def terminal(self) -> bool:
        return self is not EndpointKind.SPEECH_STARTED


@dataclass(frozen=True)
class EndpointEvent:
    kind: EndpointKind
    time_s: float                        # decision time: audio since start() (pre-roll excluded)
    speech_start_s: float | None = None  # start of the first speech frame, if any
    speech_end_s: float | None = None    # end of the last speech frame, if any
    hangover_s: float = 0.0              # trailing silence counted before the decision
    by: str = ""                         # END: "model" (it said complete) or "silence" (timed out)
    turn_probability: float | None = None   # the model's last p(complete), if it was asked

    @property
    def terminal(self) -> bool:
        return self.kind.terminal


@dataclass(frozen=True)
class TurnJudgement:
    """One ask of the end-of-turn model, at a pause."""
    at_s: float            # audio time of the ask (since start())
    speech_end_s: float    # the pause began here
    probability: float
    ms: float              # how long the model took


@dataclass(frozen=True, eq=False)
class EndpointResult:
    """A finished request: the terminal event and the audio to transcribe."""
    event: EndpointEvent
    audio: np.ndarray       # int16: pre-roll + every frame fed
    sample_rate: int = SAMPLE_RATE

    @property
    def kind(self) -> EndpointKind:
        return self.event.kind

    @property
    def samples_since_speech_end(self) -> int:
        """The silence hangover: end of speech was this long before the decision."""
        return round(self.event.hangover_s * self.sample_rate)


class Endpointer:
    """Decides where a request ends. Call start() after a trigger, then process() per frame."""

    def __init__(self, vad: Vad, settings: VadSettings, sample_rate: int = SAMPLE_RATE,
                 min_speech_s: float = 0.15, hysteresis: float = 0.15, turn_model=None):
        self.vad, self.settings, self.rate = vad, settings, sample_rate
        self._min_speech = max(1, round(min_speech_s * sample_rate))
        # Once speaking, a weaker score still counts as speech (Silero's own neg_threshold rule).
        self._stay_threshold = max(settings.threshold - hysteresis, 0.01)
        self._silence_needed = round(settings.silence_s * sample_rate)
        # The end-of-turn model (probability(audio) -> p complete), when semantic mode has one.
        self.turn_model = turn_model
        self.semantic = settings.end_of_turn == "semantic" and turn_model is not None
        self._pause = round(settings.pause_s * sample_rate)
        self._incomplete_silence = round(settings.incomplete_silence_s * sample_rate)
        self.model_error: str | None = None
        self._no_speech_limit = round(settings.no_speech_timeout_s * sample_rate)
        self._max_samples = round(settings.max_s * sample_rate)
        self.active = False
        self._chunks: list[np.ndarray] = []
        self._preroll = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._elapsed = 0                  # samples since start()
        self._candidate_start: int | None = None
        self._speech_start: int | None = None
        self._speech_end: int | None = None
        self._silence = 0                  # consecutive non-speech samples (after speech)
        self.last_probability = 0.0
        self.final_event: EndpointEvent | None = None
        self.judgements: list[TurnJudgement] = []   # the model's verdicts in this request

    def start(self, preroll: np.ndarray | None = None, no_speech_timeout_s: float | None = None) -> None:
        """Begin a request. `preroll` (audio before the trigger) is kept but not end-pointed:
        it may hold the wake word itself, which must not count as the request's speech.
        `no_speech_timeout_s` overrides the configured wait for this request (follow-ups)."""
        timeout = self.settings.no_speech_timeout_s if no_speech_timeout_s is None else no_speech_timeout_s
        self._no_speech_limit = round(timeout * self.rate)
        self.vad.reset()
        self._reset_counters()
        pre = _int16(preroll) if preroll is not None else np.zeros(0, dtype=np.int16)
        self._chunks = [pre.copy()] if len(pre) else []
        self._preroll = len(pre)
        self.active = True

    @property
    def speech_heard(self) -> bool:
        return self._speech_start is not None

    @property
    def elapsed_s(self) -> float:
        return self._elapsed / self.rate

    @property
    def silence_s(self) -> float:
        """Silence since the last speech frame (0 before any speech)."""
        return self._silence / self.rate

    @property
    def speech_end_s(self) -> float | None:
        """End of the last speech frame, as EndpointEvent.speech_end_s reports it."""
        return None if self._speech_end is None else self._speech_end / self.rate

    @property
    def preroll_s(self) -> float:
        return self._preroll / self.rate

    def audio(self) -> np.ndarray:
        """The request so far: pre-roll + every frame fed, int16."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    def feed(self, frame: np.ndarray) -> EndpointResult | None:
        """Like process(), but only reports the end of the request, with its audio."""
        event = self.process(frame)
        if event is None or not event.terminal:
            return None
        return EndpointResult(event, self.audio(), self.rate)

    def process(self, frame: np.ndarray) -> EndpointEvent | None:
        """Feed one frame; returns SPEECH_STARTED, a terminal event, or None."""
        if not self.active:
            raise RuntimeError("Endpointer.process() called before start() or after the request ended")
        audio = _int16(frame)
        self._chunks.append(audio.copy())
        frame_start = self._elapsed
        self._elapsed += len(audio)
        prob = self.last_probability = self.vad.probability(audio)

        event = None
        if self._speech_start is None:
            if prob >= self.settings.threshold:
                if self._candidate_start is None:
                    self._candidate_start = frame_start
                if self._elapsed - self._candidate_start >= self._min_speech:
                    self._speech_start, self._speech_end = self._candidate_start, self._elapsed
                    event = self._event(EndpointKind.SPEECH_STARTED)
            else:
                self._candidate_start = None
        elif prob >= self._stay_threshold:
            self._speech_end, self._silence = self._elapsed, 0
        else:
            self._silence += len(audio)
            if self.semantic:
                judged = self.judgements and self.judgements[-1].speech_end_s == self._speech_end / self.rate
                if not judged and self._silence >= self._pause and self._judge() >= self.settings.turn_threshold:
                    return self._finish(EndpointKind.END, by="model")
                if self.semantic and self._silence >= self._incomplete_silence:
                    return self._finish(EndpointKind.END, by="silence")
            if not self.semantic and self._silence >= self._silence_needed:
                return self._finish(EndpointKind.END, by="silence")

        if self._elapsed >= self._max_samples:
            return self._finish(EndpointKind.MAX_LENGTH)
        if self._speech_start is None and self._elapsed >= self._no_speech_limit:
            return self._finish(EndpointKind.NO_SPEECH)
        return event

    def _judge(self) -> float:
        """Ask the end-of-turn model about the request so far (its last 8 s are what it hears).
        A model that fails turns semantic mode off for this end-pointer: silence_s decides."""
        keep = 8 * self.rate
        tail, n = [], 0
        for chunk in reversed(self._chunks):
            tail.append(chunk)
            n += len(chunk)
            if n >= keep:
                break
        started = time.perf_counter()
        try:
            p = float(self.turn_model.probability(np.concatenate(tail[::-1])[-keep:]))
        except Exception as exc:  # noqa: BLE001 - a broken model must not end the listening
            self.model_error = f"{type(exc).__name__}: {exc}"
            self.semantic = False
            return 0.0
        self.judgements.append(TurnJudgement(self._elapsed / self.rate, self._speech_end / self.rate, p,
                                             (time.perf_counter() - started) * 1000))
        return p

    def _event(self, kind: EndpointKind, by: str = "") -> EndpointEvent:
        s = self.rate
        return EndpointEvent(
            kind, self._elapsed / s,
            None if self._speech_start is None else self._speech_start / s,
            None if self._speech_end is None else self._speech_end / s,
            self._silence / s if self._speech_start is not None else 0.0,
            by, self.judgements[-1].probability if self.judgements else None)

    def _finish(self, kind: EndpointKind, by: str = "") -> EndpointEvent:
        self.active = False
        self.final_event = self._event(kind, by)
        return self.final_event
