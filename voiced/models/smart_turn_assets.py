"""Smart Turn v3.2 (pipecat's end-of-turn model, BSD-2-Clause, (c) Daily): status and fetch.

Layout: `models_dir(settings)/smart_turn/` holds `smart-turn-v3.2-cpu.onnx`, pipecat's LICENSE
and `manifest.json` (origin, version, sha256). The one source is the `pipecat-ai==1.14.0`
wheel from the package index, which bundles the ONNX file: downloaded with `pip download`,
never installed. It is a package registry, not the hub, so `models.offline` allows it (as it
does openWakeWord's wheel). `[vad] smart_turn_model` = a path overrides the fetched file.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from voiced.config import Settings, models_dir
from voiced.models import ModelStatus
from voiced.models.openwakeword_assets import read_manifest
from voiced.models.pinned import download_pinned_wheel, sha256_file

log_ = logging.getLogger(__name__)

NAME = "smart-turn"
SUBDIR = "smart_turn"
ONNX = "smart-turn-v3.2-cpu.onnx"
LICENSE = "LICENSE"
MANIFEST = "manifest.json"

WHEEL_VERSION = "1.14.0"
ORIGIN = f"pipecat-ai {WHEEL_VERSION} wheel"
# Pinned: data taken from a downloaded wheel must be exactly the one that was checked.
WHEEL_SHA256 = "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"
ONNX_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
WHEEL_ONNX = "pipecat/audio/turn/smart_turn/data/" + ONNX
WHEEL_LICENSE = f"pipecat_ai-{WHEEL_VERSION}.dist-info/licenses/LICENSE"
PIP_TIMEOUT_S = 300.0

Log = Callable[[str], None]


def assets_dir(settings: Settings) -> Path:
    return models_dir(settings) / SUBDIR


def _user_path(settings: Settings) -> str:
    return getattr(settings.vad, "smart_turn_model", "") or ""


def _problem(settings: Settings) -> str:
    """Why there is no usable model file ("" when there is one)."""
    user = _user_path(settings)
    if user:
        return "" if Path(user).expanduser().is_file() else f"{user} does not exist ([vad] smart_turn_model)"
    path = assets_dir(settings) / ONNX
    if not path.is_file():
        return f"{ONNX} missing (run `voiced models fetch`)"
    if sha256_file(path) != ONNX_SHA256:
        return f"{ONNX} altered: sha256 is not the pinned one (run `voiced models fetch`)"
    return ""


def smart_turn_path(settings: Settings) -> Path | None:
    """The model file to load: the configured one, else the fetched one if intact."""
    if _problem(settings):
        return None
    user = _user_path(settings)
    return Path(user).expanduser() if user else assets_dir(settings) / ONNX


def status(settings: Settings) -> ModelStatus:
    """One line for `voiced models`."""
    problem = _problem(settings)
    user = _user_path(settings)
    model = str(Path(user).expanduser()) if user else str(assets_dir(settings) / ONNX)
    if problem:
        return ModelStatus(NAME, False, model, "local file" if user else ORIGIN, problem)
    if user:
        return ModelStatus(NAME, True, model, "local file ([vad] smart_turn_model)")
    origin = read_manifest(assets_dir(settings)).get("files", {}).get(ONNX, {}).get("origin", ORIGIN)
    return ModelStatus(NAME, True, model, origin, "end-of-turn model, BSD-2-Clause (c) Daily (pipecat)")


def _install(directory: Path) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        wheel = download_pinned_wheel("pipecat-ai", WHEEL_VERSION, WHEEL_SHA256, Path(tmp), NAME, PIP_TIMEOUT_S)
        with zipfile.ZipFile(wheel) as zf:
            onnx, license_text = zf.read(WHEEL_ONNX), zf.read(WHEEL_LICENSE)
        staged = Path(tmp) / ONNX
        staged.write_bytes(onnx)
        if sha256_file(staged) != ONNX_SHA256:
            raise RuntimeError(f"{ONNX} in the wheel is not the pinned file")
        (directory / LICENSE).write_bytes(license_text)
        os.replace(staged, directory / ONNX)   # atomic: a reader never sees half a model
    manifest = {"files": {ONNX: {"origin": ORIGIN, "version": "3.2", "sha256": ONNX_SHA256,
                                 "wheel_sha256": WHEEL_SHA256, "license": "BSD-2-Clause (Daily, pipecat)"}}}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def fetch(settings: Settings, log: Log | None = None) -> ModelStatus:
    """Make the Smart Turn model ready (idempotent); returns the final status."""
    log = log or log_.info
    current = status(settings)
    if current.ready or _user_path(settings):   # a configured path is the user's to provide
        log(f"{NAME}: {'ready' if current.ready else current.detail} ({current.source})")
        return current
    directory = assets_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    log(f"{NAME}: fetching from package pipecat-ai=={WHEEL_VERSION}")
    try:
        _install(directory)
    except (RuntimeError, OSError, zipfile.BadZipFile, KeyError) as exc:
        log(f"{NAME}: failed: {exc}")
        return ModelStatus(NAME, False, current.model, ORIGIN, f"fetch failed: {exc}")
    return status(settings)
