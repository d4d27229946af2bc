"""SVOX Pico (`pico2wave`, Debian's libttspico-utils): clear voices for English, German,
French, Spanish and Italian at ~10 ms a sentence. Whisper base reads its German, French and
Spanish at ~3 % WER where espeak-ng's are 40-100 %, so a reply in those languages is spoken by
Pico when it is installed. pico2wave only writes files: one WAV in a private temporary folder
per sentence."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from .base import (
    PLAIN,
    EngineInfo,
    FatalEngineError,
    MissingDependency,
    SpeechChunk,
    TransientEngineError,
    VoiceStyle,
)
from .tts_espeak import parse_wav, sentence_chunks

BINARY = "pico2wave"
LANG_DIR = Path("/usr/share/pico/lang")
# Whisper's language codes -> Pico's voices (the only ones Pico has).
VOICES = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "it": "it-IT"}
INSTALL = ("pico2wave is not installed (Debian: enable the non-free component, then "
           "apt install libttspico-utils; Ubuntu: multiverse)")


def pico_voice(language: str) -> str | None:
    """"de" -> "de-DE", "en-GB" -> "en-GB"; None when Pico has no voice for it."""
    code = language.strip().replace("_", "-")
    if "-" in code:
        lang, region = code.split("-", 1)
        code = f"{lang.lower()}-{region.upper()}"
        return code if code in VOICES.values() or code == "en-GB" else None
    return VOICES.get(code.lower())


def pico_languages() -> set[str]:
    """Whisper codes Pico can speak here (its binary and that voice's files installed)."""
    if shutil.which(BINARY) is None:
        return set()
    return {lang for lang, voice in VOICES.items() if any(LANG_DIR.glob(f"{voice}_*.bin"))}


class PicoEngine:
    name = "pico"

    def __init__(self, voice: str, *, timeout_s: float = 10.0):
        self.voice = pico_voice(voice) or voice
        self.timeout_s = timeout_s
        self.sample_rate = 16_000
        self._binary: str | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def load(self) -> EngineInfo:
        self._binary = shutil.which(BINARY)
        if self._binary is None:
            raise MissingDependency(INSTALL)
        if pico_voice(self.voice) is None:
            raise FatalEngineError(f"Pico has no voice {self.voice!r} (it has {', '.join(sorted(VOICES.values()))}, en-GB)")
        self._tmp = tempfile.TemporaryDirectory(prefix="voiced-pico-")
        self._run("ready")   # also checks the voice's files are there
        return EngineInfo(self.name, "cpu", f"pico voice {self.voice}", self._binary)

    def warmup(self) -> None:
        """Nothing to warm: each sentence is a fresh process."""

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _run(self, text: str):
        out = Path(self._tmp.name) / f"{uuid.uuid4().hex}.wav"   # callers on two threads never share one
        # The text goes on stdin: as an argument, one starting with "-" would be read as an option.
        cmd = [self._binary, "-l", self.voice, "-w", str(out)]
        try:
            proc = subprocess.run(cmd, input=text.encode(), capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TransientEngineError(f"pico2wave took over {self.timeout_s} s") from exc
        if proc.returncode != 0 or not out.is_file():
            err = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            raise FatalEngineError(f"pico2wave failed (voice {self.voice!r}): {err[0] if err else 'no output'}")
        try:
            return parse_wav(out.read_bytes())
        except ValueError as exc:
            raise TransientEngineError(f"pico2wave output unreadable: {exc}") from exc
        finally:
            out.unlink(missing_ok=True)

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        if self._binary is None:
            self.load()
        return sentence_chunks(text, style, self._run)
