"""Which voice speaks a reply in another language than the configured one.

The configured TTS engine (Chatterbox, Piper joe-us...) speaks the home language. A request
detected in another language ([stt] language = "auto" or a list) is answered in it, spoken by:
[tts] voices_by_language[lang] ("piper:<name or .onnx>", "pico:<voice>" or "espeak:<voice>"),
else SVOX Pico's voice for that language when pico2wave is installed (de, fr, es, it, en: clear
and ~10 ms a sentence), else espeak-ng's (it speaks ~100 languages, robotically), else the
default voice, said once in the log. Engines are built on first use and kept (one per language).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import threading

from ..config import Settings

log = logging.getLogger("voiced.app")


def espeak_languages() -> set[str]:
    """Language codes espeak-ng has a voice for ("de", "fr", "pt-br"...)."""
    binary = shutil.which("espeak-ng") or shutil.which("espeak")
    if not binary:
        return set()
    try:
        out = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.split()[1].lower() for line in out.splitlines()[1:] if len(line.split()) > 1}


def voice_for(settings: Settings, lang: str, pico: set[str], espeak: set[str]) -> str | None:
    """The voice that answers `lang`: [tts] voices_by_language's, else Pico's (`pico`: the
    languages it has here), else espeak-ng's, else None (the default voice)."""
    configured = settings.tts.voices_by_language.get(lang)
    if configured:
        return configured
    if lang in pico:
        return f"pico:{lang}"
    return f"espeak:{lang}" if lang in espeak else None


class LanguageVoices:
    def __init__(self, settings: Settings):
        self.settings = settings
        home = settings.stt.forced_language or (settings.stt.allowed_languages[:1] or ("en",))[0]
        self.home = home
        self._engines: dict[str, object] = {}
        self._missing: set[str] = set()
        self._espeak: set[str] | None = None
        self._pico: set[str] | None = None
        self._lock = threading.Lock()

    def engine_for(self, language: str):
        """The engine for a reply in `language`; None = the default engine (home language,
        unknown language, or no voice for it)."""
        lang = (language or "").lower()
        if not lang or lang == self.home:
            return None
        with self._lock:
            if lang in self._engines:
                return self._engines[lang]
            if lang in self._missing:
                return None
            engine = self._build(lang)
            if engine is None:
                self._missing.add(lang)
            else:
                self._engines[lang] = engine
            return engine

    def _build(self, lang: str):
        from .tts_pico import VOICES as PICO_VOICES, pico_languages

        if self._pico is None:
            self._pico = pico_languages()
        if self._espeak is None:
            self._espeak = espeak_languages()
        spec = voice_for(self.settings, lang, self._pico, self._espeak)
        if spec == f"espeak:{lang}" and lang in PICO_VOICES and lang not in self.settings.tts.voices_by_language:
            log.info("replies in %r use espeak-ng's robotic voice: install libttspico-utils for a clear one", lang)
        if spec is None:
            log.warning("no voice for replies in %r: set [tts] voices_by_language.%s; the default voice speaks",
                        lang, lang)
            return None
        kind, _, voice = spec.partition(":")
        tts = self.settings.tts
        try:
            if kind == "espeak":
                from .tts_espeak import EspeakEngine
                engine = EspeakEngine(tts.model_copy(update={"espeak_voice": voice}))
            elif kind == "pico":
                from .tts_pico import PicoEngine
                engine = PicoEngine(voice)
            elif kind == "piper":
                from .tts_piper import PiperEngine
                engine = PiperEngine(tts.model_copy(update={"piper_voice": voice}))
            else:
                raise ValueError(f"{spec!r}: use \"piper:<voice>\", \"pico:<voice>\" or \"espeak:<voice>\"")
            info = engine.load()
        except Exception as exc:  # noqa: BLE001 - a bad voice must not lose the reply
            log.warning("the voice for %r replies (%s) does not load: %s; the default voice speaks", lang, spec, exc)
            return None
        log.info("replies in %r are spoken by %s (%s)", lang, info.name, info.model)
        return engine

    def close(self) -> None:
        for engine in self._engines.values():
            if hasattr(engine, "close"):
                engine.close()
