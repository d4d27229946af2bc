"""The daemon's engines composed: factory-built engines inside RecoveringEngine, and the re-probe thread."""
from __future__ import annotations

import logging
import threading

from ..config import with_section
from ..gpu import GpuManager
from ..recovery import RecoveringEngine
from .base import EngineInfo
from .factory import make_stt, make_tts

log = logging.getLogger(__name__)


def tts_settings_for(settings, device: str, fallback: bool):
    """TTS settings for `device`. On a CPU taken as a fallback, Chatterbox only if
    chatterbox_on_cpu (else the factory's fast CPU choice: Piper, then espeak-ng)."""
    update = {"device": device}
    if fallback and device == "cpu" and settings.tts.engine == "chatterbox":
        update["engine"] = "auto"     # auto on a CPU honours chatterbox_on_cpu
    return with_section(settings, "tts", **update)


def recovering_stt(settings, gpu: GpuManager) -> tuple[RecoveringEngine, EngineInfo]:
    engine = RecoveringEngine("stt", lambda device: make_stt(with_section(settings, "stt", device=device)),
                              gpu, settings.stt.device)
    return engine, engine.load()


def recovering_tts(settings, gpu: GpuManager) -> tuple[RecoveringEngine, EngineInfo]:
    def build(device: str):
        return make_tts(tts_settings_for(settings, device, fallback=device != engine.preferred))

    engine = RecoveringEngine("tts", build, gpu, settings.tts.device)
    return engine, engine.load()


def reprobe_forever(engines: list[RecoveringEngine], interval_s: float, stop: threading.Event) -> None:
    """Body of the daemon's re-probe thread: engines that left the GPU try to return."""
    while not stop.wait(interval_s):
        for engine in engines:
            try:
                engine.reprobe()
            except Exception:
                log.exception("%s: re-probe failed", engine.role)
