"""Real human French and Spanish speech with its transcript: Asterisk's core prompts, as Debian
packages them (installed by scripts/setup.sh --test; read where apt put them, not copied).

- French: asterisk-core-sounds-fr + -fr-g722 1.6.1, recorded by June Wallack (Canadian French),
  translated by Clod Patry, Kristopher Lalletti and June Wallack.
- Spanish: asterisk-core-sounds-es + -es-g722 1.6.1, recorded by Allison Smith (Mexican Spanish).
- Licence: CC BY-SA 3.0 (Digium, Inc. and the speakers; /usr/share/doc/<package>/copyright).

The audio is 16 kHz G.722 (ffmpeg decodes it); the transcripts are the package's
core-sounds-XX.txt ("name: text"), which have a few slips of their own ("présentemnet", Spanish
without accents): WER on them is a little pessimistic.
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np

SOUNDS = Path("/usr/share/asterisk/sounds")
DOCS = Path("/usr/share/doc")
VOICES = {"fr": "fr_CA_f_June", "es": "es_MX_f_Allison"}
PACKAGES = {lang: (f"asterisk-core-sounds-{lang}", f"asterisk-core-sounds-{lang}-g722") for lang in VOICES}


def missing(lang: str) -> str | None:
    """Why the prompts of `lang` cannot be read here, or None."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed"
    if not (DOCS / PACKAGES[lang][0] / f"core-sounds-{lang}.txt.gz").is_file() or not (SOUNDS / VOICES[lang]).is_dir():
        return f"apt install {' '.join(PACKAGES[lang])} (scripts/setup.sh --test does)"
    return None


def transcripts(lang: str) -> dict[str, str]:
    lines = gzip.open(DOCS / PACKAGES[lang][0] / f"core-sounds-{lang}.txt.gz", "rt", encoding="utf-8").read()
    out = {}
    for line in lines.splitlines():
        name, sep, text = line.partition(":")
        if sep and not line.startswith(";") and text.strip():
            out[name.strip()] = text.strip()
    return out


def decode(path: Path) -> np.ndarray:
    """float32 16 kHz mono."""
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-f", "g722", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "16000", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768


def prompts(lang: str, count: int = 20, min_words: int = 8, max_words: int = 25) -> list[tuple[str, str, np.ndarray]]:
    """(name, transcript, audio) of the first `count` prompts (by name) of sentence length."""
    chosen = []
    for name, text in sorted(transcripts(lang).items()):
        path = SOUNDS / VOICES[lang] / f"{name}.g722"
        if min_words <= len(text.split()) <= max_words and path.is_file():
            chosen.append((name, text, decode(path)))
            if len(chosen) == count:
                break
    return chosen
