"""Wake word detection with openWakeWord (ONNX), fed 80 ms frames of 16 kHz int16 audio.

Firing policy (after wyoming-openwakeword): a model fires on the `trigger_level`-th
consecutive frame scoring >= `threshold`; then every model is quiet for `refractory_s` of
AUDIO (samples fed, not wall time, so a replayed recording behaves identically) and until
its score has dropped below the threshold again, so one utterance fires once. Features keep
being computed during the refractory period.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiced.engines.base import FatalEngineError
from voiced.config import WakeSettings
from voiced.models.openwakeword_assets import EMBEDDING, MELSPEC, resolve_wake_model, wake_model_name

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 1280   # openWakeWord's native step: 80 ms


@dataclass(frozen=True)
class Detection:
    model: str           # wake word (or class) name, e.g. "hey_jarvis"
    score: float         # score of the frame that fired
    audio_time_s: float  # end of that frame, in seconds of audio fed to this detector


class WakeWordError(FatalEngineError):
    """The wake word models could not be loaded."""


def _as_int16(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype == np.int16:
        return frame.reshape(-1)
    if np.issubdtype(frame.dtype, np.floating):   # engine currency: float32 in [-1, 1]
        return (np.clip(frame.reshape(-1), -1.0, 1.0) * 32767).astype(np.int16)
    raise TypeError(f"wake word audio must be int16 or float, got {frame.dtype}")


class WakeWordDetector:
    """Several wake word models over one shared feature pipeline."""

    def __init__(self, wake: WakeSettings, models_path: Path):
        try:
            from openwakeword import Model
            import openwakeword
        except ImportError as exc:   # pragma: no cover - a dependency of voiced
            raise WakeWordError("openwakeword is not installed: pip install openwakeword==0.6.0") from exc
        models_path = Path(models_path)
        melspec, embedding = models_path / MELSPEC, models_path / EMBEDDING
        for path in (melspec, embedding):
            if not path.is_file():
                raise WakeWordError(f"{path} is missing: run `voiced models fetch`")
        try:
            paths = [resolve_wake_model(name, models_path) for name in wake.models]
        except ValueError as exc:
            raise WakeWordError(str(exc)) from exc

        self.settings = wake
        # openWakeWord keys single-output models by file stem; report friendly names instead.
        self._labels = {p.stem: wake_model_name(p) for p in paths}
        started = time.perf_counter()
        try:
            self._model = Model(wakeword_models=[str(p) for p in paths], inference_framework="onnx",
                                melspec_model_path=str(melspec), embedding_model_path=str(embedding))
        except Exception as exc:  # noqa: BLE001 - onnxruntime/openwakeword raise untyped errors
            raise WakeWordError(f"cannot load wake word models {[str(p) for p in paths]}: {exc}") from exc
        # Multi-class models (timer) need their class table. openWakeWord finds it by bare name
        # only (a file path never matches) and its class_mapping_dicts argument is broken in
        # 0.6.0 (it stores the outer dict), so set the table directly.
        for p in paths:
            table = openwakeword.model_class_mappings.get(wake_model_name(p))
            if table and p.stem in self._model.class_mapping:
                self._model.class_mapping[p.stem] = dict(table)
        self._seed_feature_buffer()
        self.load_s = time.perf_counter() - started
        self.model_paths = tuple(paths)

        self._samples = 0                  # audio clock: samples fed since construction
        self._quiet_until = 0              # refractory end, in samples
        self._streak: dict[str, int] = {}  # consecutive frames over threshold, per label
        self._needs_drop: set[str] = set() # fired labels waiting for a below-threshold frame
        self.scores: dict[str, float] = {}  # last frame's scores, for doctor/tuning views

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._labels.values())

    @property
    def audio_time_s(self) -> float:
        return self._samples / SAMPLE_RATE

    def _seed_feature_buffer(self) -> None:
        # openWakeWord primes its embedding history with random noise (np.random) on load and
        # reset; fixed noise makes the same audio give the same scores on every run.
        pre = self._model.preprocessor
        if not (hasattr(pre, "_get_embeddings") and hasattr(pre, "feature_buffer")):
            return
        if getattr(self, "_seed_features", None) is None:   # computed once: 4 s of embeddings
            noise = np.random.default_rng(0).integers(-1000, 1000, SAMPLE_RATE * 4).astype(np.int16)
            self._seed_features = pre._get_embeddings(noise)
        pre.feature_buffer = self._seed_features.copy()

    def reset(self) -> None:
        """Forget all buffered audio and scores (after playback: our own voice, stale speech).

        Also ends any refractory period: the daemon stops feeding the detector during a
        turn, so audio time stands still and the period would otherwise spill over into
        the next request (a wake word right after a turn would be ignored)."""
        self._model.reset()
        self._seed_feature_buffer()
        self._streak.clear()
        self._needs_drop.clear()
        self._quiet_until = 0
        self.scores = {}

    def process(self, frame: np.ndarray) -> Detection | None:
        """Feed one frame (ideally 1280 samples); returns a Detection on the frame that fires."""
        audio = _as_int16(frame)
        raw = self._model.predict(audio)
        self._samples += len(audio)
        self.scores = {self._labels.get(k, k): float(v) for k, v in raw.items()}

        threshold, level = self.settings.threshold, self.settings.trigger_level
        quiet = self._samples < self._quiet_until
        best: Detection | None = None
        for name, score in self.scores.items():
            if score < threshold:
                self._streak[name] = 0
                self._needs_drop.discard(name)
                continue
            if quiet or name in self._needs_drop:
                # A run of high scores that began while quiet belongs to the utterance
                # that already fired (or to one inside the refractory period): skip it all.
                self._streak[name] = 0
                self._needs_drop.add(name)
                continue
            self._streak[name] = self._streak.get(name, 0) + 1
            if self._streak[name] >= level and (best is None or score > best.score):
                best = Detection(name, score, self.audio_time_s)
        if best is not None:
            self._quiet_until = self._samples + round(self.settings.refractory_s * SAMPLE_RATE)
            for name in self.scores:
                self._streak[name] = 0
                if self.scores[name] >= threshold:
                    self._needs_drop.add(name)
        return best
