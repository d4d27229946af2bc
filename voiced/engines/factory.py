"""Building engines by name, lazily (heavy imports only for what is used), and choosing
them: STT faster-whisper where its weights are prepared, else the transformers pipeline; TTS
Chatterbox where it can run at a usable speed, else Piper, else espeak-ng."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

from ..config import Settings
from .base import PLAIN, EngineInfo, FatalEngineError, SpeechChunk, SpeechToText, TextToSpeech, VoiceStyle
from .threads import cpu_threads, set_torch_threads  # noqa: F401 - cpu_threads: its old import path

log = logging.getLogger(__name__)


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA install means "no CUDA"
        return False


def faster_whisper_ready(settings: Settings) -> str:
    """"" when stt.engine auto may use faster-whisper (package and weights here), else why not."""
    import importlib.util

    from ..models.whisper_fast import resolve

    if importlib.util.find_spec("faster_whisper") is None:
        return "the faster-whisper package is not installed"
    try:
        resolve(settings, allow_download=False)
    except FileNotFoundError as exc:
        return str(exc)
    return ""


def build_stt(name: str, settings: Settings) -> SpeechToText:
    if name == "faster-whisper":
        from .stt_faster_whisper import FasterWhisperSTT
        return FasterWhisperSTT(settings.stt, settings)
    if name == "transformers":
        from .stt_whisper import WhisperSTT
        set_torch_threads(settings)
        return WhisperSTT(settings.stt, settings)
    raise FatalEngineError(f"unknown stt.engine {name!r}; choose auto, faster-whisper or transformers")


def _with_note(engine: SpeechToText, info: EngineInfo, note: str) -> tuple[SpeechToText, EngineInfo]:
    engine.info = info = dataclasses.replace(info, notes=info.notes + (note,))
    return engine, info


def _auto_stt(settings: Settings) -> tuple[SpeechToText, EngineInfo]:
    """faster-whisper (about twice as fast on a CPU, see benchmarks/README.md) when its weights
    are prepared and it loads, else the transformers pipeline. Says which, and why, in the log
    and in the engine's notes (shown on the status page)."""
    why_not = faster_whisper_ready(settings)
    if not why_not:
        engine = build_stt("faster-whisper", settings)
        try:
            info = engine.load()
        except FatalEngineError as exc:   # OutOfMemory propagates: recovery handles the device
            why_not = f"it failed to load ({exc})"
        else:
            return _with_note(engine, info, "stt.engine auto chose faster-whisper: its weights are prepared")
    log.info("stt.engine auto: not using faster-whisper: %s; using transformers", why_not)
    engine = build_stt("transformers", settings)
    return _with_note(engine, engine.load(), f"stt.engine auto chose transformers: {why_not}")


def make_stt(settings: Settings) -> tuple[SpeechToText, EngineInfo]:
    if settings.stt.engine == "wyoming":   # a remote service, with the local model as fallback
        from ..wyoming.remote import remote_stt
        return remote_stt(settings, make_stt)
    if settings.stt.engine == "auto":
        engine, info = _auto_stt(settings)
    else:
        engine = build_stt(settings.stt.engine, settings)
        info = engine.load()
    log.info("speech-to-text: %s on %s (%s)%s", info.name, info.device, info.model,
             "; " + "; ".join(info.notes) if info.notes else "")
    return engine, info


def _tts_candidates(settings: Settings) -> list[str]:
    t = settings.tts
    if t.engine != "auto":
        return [t.engine] + [e for e in ("piper", "espeak") if e != t.engine]
    from ..models.chatterbox import status as chatterbox_status

    chatterbox_ok = chatterbox_status(settings).ready
    on_gpu = t.device != "cpu" and cuda_available()
    if chatterbox_ok and (on_gpu or t.chatterbox_on_cpu):
        return ["chatterbox", "piper", "espeak"]
    why = "no Chatterbox weights (voiced models fetch)" if not chatterbox_ok else \
        "no CUDA and chatterbox_on_cpu = false (Chatterbox is ~13x slower than real time on a CPU)"
    log.info("TTS auto: not using Chatterbox: %s", why)
    return ["piper", "espeak"]


def _build_tts(name: str, settings: Settings) -> TextToSpeech:
    if name == "chatterbox":
        from .tts_chatterbox import ChatterboxEngine
        set_torch_threads(settings)
        return ChatterboxEngine(settings.tts, settings)
    if name == "piper":
        from .tts_piper import PiperEngine
        return PiperEngine(settings.tts)
    if name == "espeak":
        from .tts_espeak import EspeakEngine
        return EspeakEngine(settings.tts)
    raise FatalEngineError(f"unknown TTS engine {name!r}; choose chatterbox, piper or espeak")


class FallbackTTS:
    """Speaks with the first engine that works; if it fails for good mid-run, moves to the next."""

    def __init__(self, engines: list[tuple[TextToSpeech, EngineInfo]], candidates: list[str], settings: Settings):
        self._engines, self._candidates, self._settings = engines, candidates, settings
        self.sample_rate = engines[0][0].sample_rate

    @property
    def info(self) -> EngineInfo:
        return self._engines[0][1]

    def load(self) -> EngineInfo:
        return self.info

    def warmup(self) -> None:
        self._engines[0][0].warmup()

    def close(self) -> None:
        """Stop the engine's resources now (Piper's worker process), not at garbage collection."""
        close = getattr(self._engines[0][0], "close", None)
        if close:
            close()

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        while True:
            engine, info = self._engines[0]
            try:
                yield from engine.synthesize(text, style)
                return
            except FatalEngineError as exc:
                log.error("TTS %s failed for good (%s); switching to the next engine", info.name, exc)
                if not self._next():
                    raise

    def _next(self) -> bool:
        while self._candidates:
            name = self._candidates.pop(0)
            try:
                engine = _build_tts(name, self._settings)
                info = engine.load()
            except FatalEngineError as exc:
                log.warning("TTS %s unavailable: %s", name, exc)
                continue
            self.close()
            self._engines[0] = (engine, info)
            self.sample_rate = engine.sample_rate
            log.warning("TTS now speaks with %s on %s", info.name, info.device)
            return True
        return False


def make_tts(settings: Settings) -> tuple[TextToSpeech, EngineInfo]:
    if settings.tts.engine == "wyoming":   # a remote service, with the local engines as fallback
        from ..wyoming.remote import remote_tts
        return remote_tts(settings, make_tts)
    candidates = _tts_candidates(settings)
    errors = []
    while candidates:
        name = candidates.pop(0)
        try:
            engine = _build_tts(name, settings)
            info = engine.load()
        except FatalEngineError as exc:
            errors.append(f"{name}: {exc}")
            log.warning("TTS %s unavailable: %s", name, exc)
            continue
        log.info("text-to-speech: %s on %s (%s)", info.name, info.device, info.model)
        tts = FallbackTTS([(engine, info)], candidates, settings)
        return tts, info
    raise FatalEngineError("no TTS engine could start: " + "; ".join(errors))
