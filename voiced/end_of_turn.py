"""Semantic end of turn: has the user finished what they were saying, or only paused?

Silence alone cannot tell "ask not ... <pause>" from "... for your country. <pause>"; Smart
Turn v3.2 (pipecat, BSD-2-Clause) hears the words' prosody and scores how complete the turn
sounds. Input contract: mono 16 kHz audio up to now (int16 or float32, any length); the model
sees the last 8 s as Whisper log-mel features (80 x 800), zero-padded at the start.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from voiced.engines.base import FatalEngineError

SAMPLE_RATE = 16_000
WINDOW_S = 8
N_FFT, HOP, N_MELS = 400, 160, 80


def _mel_filters() -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters [201, 80], as Whisper's extractor builds them."""
    def to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz >= 1000, 15 + np.log(np.maximum(hz, 1e-10) / 1000) * 27 / np.log(6.4), 3 * hz / 200)

    def to_hz(mel):
        return np.where(mel >= 15, 1000 * np.exp((mel - 15) * np.log(6.4) / 27), 200 * mel / 3)

    edges = to_hz(np.linspace(to_mel(0.0), to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    return np.maximum(0, np.minimum(down, up)) * (2 / (edges[2:] - edges[:-2]))


# Computed once at import: they depend only on the constants above.
_MEL = _mel_filters()
_HANN = np.hanning(N_FFT + 1)[:-1]   # periodic Hann, as torch.hann_window


def _last_window(audio: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1], exactly the last 8 s, zero-padded at the start."""
    audio = np.asarray(audio).reshape(-1)
    if not np.issubdtype(audio.dtype, np.floating):
        audio = audio.astype(np.float32) / 32768.0
    audio = audio[-WINDOW_S * SAMPLE_RATE:].astype(np.float32, copy=False)
    return np.pad(audio, (WINDOW_S * SAMPLE_RATE - len(audio), 0))


def whisper_features(audio: np.ndarray) -> np.ndarray:
    """Log-mel features [80, 800] float32 of the last 8 s, as WhisperFeatureExtractor(do_normalize=True)."""
    x = _last_window(audio)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)    # do_normalize: in float32, like the reference
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2        # [801, 201]
    log_mel = np.log10(np.maximum(power @ _MEL, 1e-10)).T[:, :-1]   # Whisper drops the last frame
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """Smart Turn v3.2 on onnxruntime: probability that the turn is complete."""
    name = "smart-turn-v3.2"

    def __init__(self, path: str | Path, threads: int = 1):
        path = Path(path).expanduser()
        if not path.is_file():
            raise FatalEngineError(f"Smart Turn model {path} is missing: run `voiced models fetch` "
                                   f"(or set [vad] smart_turn_model to an existing .onnx file)")
        import onnxruntime as ort

        started = time.perf_counter()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise FatalEngineError(f"Smart Turn model {path} cannot be loaded ({exc}): "
                                   f"run `voiced models fetch`") from exc
        self.path = path
        self.load_s = time.perf_counter() - started
        self.last_ms = 0.0

    def probability(self, audio: np.ndarray) -> float:
        """P(turn complete), 0..1, for mono 16 kHz audio ending now (the model outputs a sigmoid)."""
        started = time.perf_counter()
        features = whisper_features(audio)[None]
        p = float(self._session.run(None, {"input_features": features})[0].reshape(-1)[0])
        self.last_ms = (time.perf_counter() - started) * 1000
        return p


def load_turn_model(settings) -> SmartTurn | None:
    """The end-of-turn model for [vad] end_of_turn = "semantic"; None (silence decides) when
    that mode is off or its model is missing: said once, with the fix."""
    import logging

    from voiced.models.smart_turn_assets import smart_turn_path, status

    if settings.vad.end_of_turn != "semantic":
        return None
    path = smart_turn_path(settings)
    if path is None:
        logging.getLogger("voiced.app").warning(
            "end of turn: the Smart Turn model is not usable (%s); turns end after [vad] silence_s = %.1f s of "
            "silence instead. Run `voiced models fetch`, or set [vad] end_of_turn = \"silence\" to silence this.",
            status(settings).detail or "missing", settings.vad.silence_s)
        return None
    return SmartTurn(path)
