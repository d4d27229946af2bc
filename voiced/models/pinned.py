"""Files pinned by their sha256: hashing, and a wheel downloaded (never installed) to take
weights out of it (openWakeWord's models, Smart Turn's ONNX)."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from voiced.models import progress


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_pinned_wheel(dist: str, version: str, sha256: str, dest: Path, label: str,
                          timeout_s: float) -> Path:
    """`pip download` dist==version (the wheel alone, no dependencies) into `dest`; the wheel,
    checked against `sha256`. RuntimeError says what went wrong (offline, wrong file)."""
    args = ["--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "-d", str(dest), f"{dist}=={version}"]
    try:
        proc = progress.pip_download(args, label, timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download {dist}=={version} timed out") from None
    wheels = list(dest.glob(f"{dist.replace('-', '_')}-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download {dist}=={version} failed: {last[:300]}")
    digest = sha256_file(wheels[0])
    if digest != sha256:
        raise RuntimeError(f"{wheels[0].name}: sha256 {digest} is not the pinned {sha256}")
    return wheels[0]
