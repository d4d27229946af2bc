"""The voice store: one folder per voice (reference.wav + cached Chatterbox conditionals) and an
index.json with each voice's defaults and which voice is the default. The daemon, the API and
the CLI share it through the files: every read looks at index.json again (it is tiny), and
writes hold a lock and replace the index atomically, so a crash never leaves half a file."""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..audio import effects
from ..config import Settings, voices_dir
from ..engines.base import VoiceStyle
from .validate import CLIP_RATE, InvalidClip, check_clip

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
CLIP = "reference.wav"
INDEX = "index.json"


class VoiceError(Exception):
    """kind: "invalid" (bad name, clip or value), "unknown" (no such voice), "exists"."""

    def __init__(self, kind: str, message: str, field: str = ""):
        super().__init__(message)
        self.kind, self.field = kind, field


@dataclass(frozen=True)
class Voice:
    name: str
    seconds: float
    added: float
    speed: float | None = None            # None = [tts] speed
    pitch: float | None = None            # None = [tts] pitch
    exaggeration: float | None = None     # None = [tts] exaggeration (Chatterbox only)

    def json(self, default: bool = False) -> dict:
        return {**asdict(self), "default": default}


def check_controls(speed: float | None, pitch: float | None, exaggeration: float | None) -> None:
    """VoiceError naming the first value out of range."""
    for field, value, bounds in (("speed", speed, effects.SPEED_RANGE), ("pitch", pitch, effects.PITCH_RANGE),
                                 ("exaggeration", exaggeration, (0.0, 2.0))):
        if value is not None:
            try:
                effects.check_range(field, value, bounds)
            except ValueError as exc:
                raise VoiceError("invalid", str(exc), field) from None


class VoiceStore:
    def __init__(self, root: Path, settings: Settings, vad_factory=None):
        self.root, self.settings = Path(root), settings
        self._vad_factory = vad_factory

    # ---- reading ---------------------------------------------------------------------
    def _index(self) -> dict:
        try:
            data = json.loads((self.root / INDEX).read_text())
        except FileNotFoundError:
            return {"default": None, "voices": {}}
        except (OSError, ValueError) as exc:   # a damaged index must not stop the daemon
            log.error("voices: %s unreadable (%s); no named voices until it is fixed", self.root / INDEX, exc)
            return {"default": None, "voices": {}}
        return {"default": data.get("default"), "voices": dict(data.get("voices") or {})}

    def list(self) -> list[Voice]:
        return [Voice(name=name, **fields) for name, fields in sorted(self._index()["voices"].items())]

    def get(self, name: str) -> Voice:
        fields = self._index()["voices"].get(name)
        if fields is None:
            raise VoiceError("unknown", f"no voice named {name!r} (voiced voices list)", "voice")
        return Voice(name=name, **fields)

    def default_name(self) -> str | None:
        index = self._index()
        return index["default"] if index["default"] in index["voices"] else None

    def folder(self, name: str) -> Path:
        return self.root / name

    def clip(self, name: str) -> Path:
        return self.root / name / CLIP

    # ---- writing ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._index()
            yield index
            tmp = self.root / f"{INDEX}.tmp{os.getpid()}"
            tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
            os.replace(tmp, self.root / INDEX)

    def _vad(self):
        if self._vad_factory is not None:
            return self._vad_factory()
        from ..models.openwakeword_assets import assets_dir
        from ..vad import EnergyVad, make_vad

        try:
            return make_vad(self.settings.vad, assets_dir(self.settings))
        except Exception as exc:  # noqa: BLE001 - no Silero model: the level check is all we have
            log.warning("voices: Silero VAD unavailable (%s); checking speech by level only", exc)
            return EnergyVad()

    def add(self, name: str, data: bytes, *, speed: float | None = None, pitch: float | None = None,
            exaggeration: float | None = None, replace: bool = False) -> Voice:
        """Validate the clip and keep it; VoiceError says what is wrong."""
        from ..audio.decode import write_wav

        if not NAME.match(name or ""):
            raise VoiceError("invalid", f"voice name {name!r}: use 1-32 letters, digits, '-' or '_', "
                                        "starting with a letter or digit", "name")
        check_controls(speed, pitch, exaggeration)
        v = self.settings.voices
        try:
            audio = check_clip(data, v.min_clip_s, v.max_clip_s, self._vad())
        except InvalidClip as exc:
            raise VoiceError("invalid", f"reference clip refused: {exc}", "audio") from None
        with self._locked() as index:
            if name in index["voices"] and not replace:
                raise VoiceError("exists", f"a voice named {name!r} exists (remove it first)", "name")
            folder = self.folder(name)
            shutil.rmtree(folder, ignore_errors=True)     # old clip and its conditionals
            folder.mkdir(parents=True)
            tmp = folder / f"partial-{CLIP}"
            write_wav(tmp, audio, CLIP_RATE)
            os.replace(tmp, folder / CLIP)
            voice = Voice(name, round(len(audio) / CLIP_RATE, 2), time.time(), speed, pitch, exaggeration)
            index["voices"][name] = {k: val for k, val in asdict(voice).items() if k != "name"}
        log.info("voices: added %s (%.1f s)", name, voice.seconds)
        return voice

    def remove(self, name: str) -> None:
        with self._locked() as index:
            if index["voices"].pop(name, None) is None:
                raise VoiceError("unknown", f"no voice named {name!r}", "name")
            if index["default"] == name:
                index["default"] = None
            shutil.rmtree(self.folder(name), ignore_errors=True)
        log.info("voices: removed %s", name)

    def set_default(self, name: str | None) -> None:
        """None or "" = no default: the configured [tts] voice speaks."""
        with self._locked() as index:
            if name and name not in index["voices"]:
                raise VoiceError("unknown", f"no voice named {name!r}", "name")
            index["default"] = name or None

    # ---- speaking --------------------------------------------------------------------
    def style(self, name: str | None = None, *, speed: float | None = None, pitch: float | None = None,
              exaggeration: float | None = None) -> VoiceStyle:
        """How to speak: the named voice (or the default one), its defaults, then the request's
        overrides. An unknown name is the caller's error; a voice whose clip has gone missing
        falls back to the configured voice, and the log says so."""
        check_controls(speed, pitch, exaggeration)
        tts = self.settings.tts
        chosen = name or self.default_name()
        voice = self.get(chosen) if chosen else None
        clip = self.clip(chosen) if chosen else None
        if clip is not None and not clip.is_file():
            log.warning("voices: %s has no reference clip (%s missing); the configured voice speaks", chosen, clip)
            clip = None
        def pick(request, own, configured):
            return request if request is not None else own if own is not None else configured
        return VoiceStyle(speed=pick(speed, voice and voice.speed, tts.speed),
                          pitch=pick(pitch, voice and voice.pitch, tts.pitch),
                          voice=chosen or "", clip=clip,
                          cache_dir=self.folder(chosen) if clip else None,
                          exaggeration=pick(exaggeration, voice and voice.exaggeration, None))


def open_store(settings: Settings) -> VoiceStore:
    return VoiceStore(voices_dir(settings), settings)
