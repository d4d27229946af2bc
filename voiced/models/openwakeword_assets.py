"""openWakeWord and Silero VAD weights: status, fetch, and name -> file resolution.

Layout: `models_dir(settings)/openwakeword/` holds the ONNX files flat, plus `manifest.json`
(per file: origin, version, sha256). Sources, in order:
  1. openwakeword's own `utils.download_models` (its GitHub release assets), unless
     `models.offline`;
  2. the `openwakeword==0.4.0` wheel from the package index, which still ships the ONNX
     models inside it (fetched with `pip download`, never installed: 0.6.0 is the runtime).
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from voiced.config import Settings, models_dir
from voiced.models import ModelStatus, progress
from voiced.models.pinned import download_pinned_wheel, sha256_file

log_ = logging.getLogger(__name__)

SUBDIR = "openwakeword"
MANIFEST = "manifest.json"
MELSPEC = "melspectrogram.onnx"
EMBEDDING = "embedding_model.onnx"
SILERO_VAD = "silero_vad.onnx"
FEATURE_FILES = (MELSPEC, EMBEDDING)
NOT_WAKE_WORDS = frozenset({MELSPEC, EMBEDDING, SILERO_VAD})

WHEEL_VERSION = "0.4.0"
# Pinned: the wheel is an offline source of executable-adjacent data, so it must be the one we checked.
WHEEL_SHA256 = "2c353f49a35d384507403efde3db439353d8281a52d08a0e42a5b493e5145075"
WHEEL_MODELS = (MELSPEC, EMBEDDING, SILERO_VAD, "hey_jarvis_v0.1.onnx", "alexa_v0.1.onnx",
                "hey_mycroft_v0.1.onnx", "hey_marvin_v0.1.onnx", "timer_v0.1.onnx", "weather_v0.1.onnx")
WHEEL_PREFIX = "openwakeword/resources/models/"

DOWNLOAD_TIMEOUT_S = 180.0   # download_models calls requests without a timeout: bound it from outside
PIP_TIMEOUT_S = 300.0

Log = Callable[[str], None]


class UnknownWakeModel(ValueError):
    """A configured wake word is neither a file nor a model name found in the models folder."""


def assets_dir(settings: Settings) -> Path:
    return models_dir(settings) / SUBDIR


# ---------------------------------------------------------------- name resolution

def _normalise(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def wake_model_name(path: str | Path) -> str:
    """Friendly name of a model file: hey_jarvis_v0.1.onnx -> hey_jarvis."""
    return re.sub(r"_v\d+(\.\d+)*$", "", Path(path).stem)


def _version_key(path: Path) -> tuple[int, ...]:
    m = re.search(r"_v(\d+(?:\.\d+)*)$", path.stem)
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def available_wake_models(directory: Path) -> list[str]:
    """Wake word names that have an .onnx file in `directory` (feature and VAD models excluded)."""
    if not directory.is_dir():
        return []
    return sorted({wake_model_name(p) for p in directory.glob("*.onnx") if p.name not in NOT_WAKE_WORDS})


def resolve_wake_model(name_or_path: str, directory: Path) -> Path:
    """Map "hey_jarvis" / "hey jarvis" / "hey_jarvis_v0.1" / a path to an existing .onnx file."""
    raw = Path(name_or_path).expanduser()
    looks_like_path = os.sep in name_or_path or raw.suffix in (".onnx", ".tflite")
    if looks_like_path:
        if raw.suffix == ".tflite":
            # voiced runs openWakeWord on onnxruntime only; a sibling .onnx is the same model.
            onnx = raw.with_suffix(".onnx")
            if onnx.is_file():
                return onnx
            raise UnknownWakeModel(f"wake model {raw}: .tflite is not supported (no tflite runtime); "
                                   f"give the .onnx version of the model")
        if raw.is_file():
            return raw
        if os.sep in name_or_path:
            raise UnknownWakeModel(f"wake model file {raw} does not exist")
        name_or_path = raw.stem   # "hey_jarvis_v0.1.onnx" given as a bare name
    name = _normalise(name_or_path)
    exact = directory / f"{name}.onnx"
    if exact.is_file() and exact.name not in NOT_WAKE_WORDS:
        return exact
    versions = sorted(directory.glob(f"{name}_v*.onnx"), key=_version_key) if directory.is_dir() else []
    versions = [p for p in versions if wake_model_name(p) == name]
    if versions:
        return versions[-1]
    available = available_wake_models(directory)
    if not available:
        raise UnknownWakeModel(f"wake model {name_or_path!r}: no wake word models in {directory}; "
                               f"run `voiced models fetch`")
    raise UnknownWakeModel(f"unknown wake model {name_or_path!r}; available in {directory}: "
                           f"{', '.join(available)} (or give a path to an .onnx file)")


# ---------------------------------------------------------------- manifest and status


def read_manifest(directory: Path) -> dict:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {"files": {}}


def _write_manifest(directory: Path, manifest: dict) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / MANIFEST)


def _problems(directory: Path, names: list[str]) -> list[str]:
    """What is missing or altered among the files `names` (relative to `directory`)."""
    files = read_manifest(directory).get("files", {})
    problems = []
    for name in names:
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} missing")
        elif name in files and files[name].get("sha256") != sha256_file(path):
            problems.append(f"{name} altered (sha256 differs from manifest)")
    return problems


def _wake_files(settings: Settings, directory: Path) -> tuple[list[str], list[str]]:
    """(files needed in `directory`, problems with configured wake models outside it)."""
    needed, problems = list(FEATURE_FILES), []
    for model in settings.wake.models:
        try:
            path = resolve_wake_model(model, directory)
        except UnknownWakeModel as exc:
            problems.append(str(exc))
            continue
        if path.parent.resolve() == directory.resolve():
            needed.append(path.name)
    return needed, problems


def _origin(directory: Path, names: list[str]) -> str:
    files = read_manifest(directory).get("files", {})
    origins = sorted({files[n]["origin"] for n in names if n in files})
    return ", ".join(origins) or "local files (no manifest entry)"


def _with_hint(file_problems: list[str], other: list[str] = ()) -> str:
    """Missing or altered files are fixed by a fetch; a wrong name in the config is not."""
    text = "; ".join(file_problems)
    if text and "voiced models fetch" not in text:
        text += " (run `voiced models fetch`)"
    return "; ".join([t for t in (text, *other) if t])


def wake_status(settings: Settings) -> ModelStatus:
    directory = assets_dir(settings)
    needed, config_problems = _wake_files(settings, directory)
    file_problems = _problems(directory, needed)
    models = ", ".join(settings.wake.models)
    if file_problems or config_problems:
        return ModelStatus("wake", False, models, "openWakeWord", _with_hint(file_problems, config_problems))
    return ModelStatus("wake", True, models, _origin(directory, needed), f"in {directory}")


def vad_status(settings: Settings) -> ModelStatus:
    if settings.vad.engine == "energy":
        return ModelStatus("vad", True, "energy", "built in", "no weights needed")
    directory = assets_dir(settings)
    problems = _problems(directory, [SILERO_VAD])
    if problems:
        return ModelStatus("vad", False, "silero", "openWakeWord", _with_hint(problems))
    return ModelStatus("vad", True, str(directory / SILERO_VAD), _origin(directory, [SILERO_VAD]))


def status(settings: Settings) -> ModelStatus:
    """One line for `voiced models`: the wake word models and, if used, Silero VAD."""
    wake, vad = wake_status(settings), vad_status(settings)
    if wake.ready and vad.ready:
        return wake
    bad = [s for s in (wake, vad) if not s.ready]
    return ModelStatus("wake", False, wake.model, wake.source, "; ".join(f"{s.name}: {s.detail}" for s in bad))


def statuses(settings: Settings) -> tuple[ModelStatus, ModelStatus]:
    return wake_status(settings), vad_status(settings)


# ---------------------------------------------------------------- fetch

def _install(src_dir: Path, directory: Path, origin: str, version: str, **extra: str) -> list[str]:
    """Move every .onnx of `src_dir` into `directory`, recording it in the manifest."""
    import onnxruntime as ort   # only to reject corrupt/HTML downloads before they replace good files

    manifest = read_manifest(directory)
    installed = []
    for src in sorted(src_dir.glob("*.onnx")):
        try:
            ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            log_.warning("skipping %s from %s: not a loadable ONNX model (%s)", src.name, origin, exc)
            continue
        digest = sha256_file(src)
        os.replace(src, directory / src.name)
        manifest["files"][src.name] = {"origin": origin, "version": version, "sha256": digest, **extra}
        installed.append(src.name)
    _write_manifest(directory, manifest)
    return installed


_DOWNLOAD_SCRIPT = "import sys, openwakeword.utils as u; u.download_models([], target_directory=sys.argv[1])"


def _fetch_release(directory: Path, log: Log) -> list[str]:
    """openWakeWord's own downloader, in a child process so a stalled connection can be killed."""
    import openwakeword

    # The release tag the installed openwakeword downloads from, e.g. v0.5.1.
    tag = re.search(r"/download/([^/]+)/", openwakeword.FEATURE_MODELS["melspectrogram"]["download_url"])
    version = tag.group(1) if tag else "unknown"
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        try:
            with progress.watch_dir(f"wake: openWakeWord release {version}", Path(tmp)):
                proc = subprocess.run([sys.executable, "-c", _DOWNLOAD_SCRIPT, tmp], capture_output=True,
                                      text=True, timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"openwakeword download_models timed out after {DOWNLOAD_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"openwakeword download_models failed: {last[:300]}")
        return _install(Path(tmp), directory, f"openWakeWord release {version} (download_models)", version,
                        downloader=f"openwakeword {_dist_version('openwakeword')}")


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def _fetch_wheel(directory: Path, log: Log) -> list[str]:
    """The ONNX files bundled in the openwakeword 0.4.0 wheel (downloaded, not installed)."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        tmp_path = Path(tmp)
        wheel = download_pinned_wheel("openwakeword", WHEEL_VERSION, WHEEL_SHA256, tmp_path / "dl", "wake",
                                      PIP_TIMEOUT_S)
        digest = sha256_file(wheel)
        out = tmp_path / "models"
        out.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            for name in WHEEL_MODELS:
                (out / name).write_bytes(zf.read(WHEEL_PREFIX + name))
        return _install(out, directory, f"package openwakeword=={WHEEL_VERSION}", WHEEL_VERSION, wheel_sha256=digest)


def fetch(settings: Settings, log: Log | None = None) -> ModelStatus:
    """Make the wake word (and Silero VAD) models ready; returns the final status."""
    log = log or log_.info
    current = status(settings)
    if current.ready:
        log(f"wake: ready ({current.source})")
        return current
    directory = assets_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    sources = [] if settings.models.offline else [("openWakeWord releases", _fetch_release)]
    sources.append((f"package openwakeword=={WHEEL_VERSION}", _fetch_wheel))
    for label, source in sources:
        log(f"wake: fetching models from {label}")
        try:
            installed = source(directory, log)
        except (RuntimeError, OSError, zipfile.BadZipFile, KeyError) as exc:
            errors.append(f"{label}: {exc}")
            log(f"wake: {label} failed: {exc}")
            continue
        log(f"wake: installed {len(installed)} files from {label}")
        current = status(settings)
        if current.ready:
            return current
        errors.append(f"{label}: still not ready: {current.detail}")
    detail = "; ".join(errors) or current.detail
    return ModelStatus("wake", False, current.model, current.source, detail)
