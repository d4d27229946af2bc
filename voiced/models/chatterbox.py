"""Chatterbox TTS weights: where they are, and fetching them from the Hugging Face hub.

`tts.chatterbox_model` is a hub id (default ResembleAI/chatterbox) or a local directory
holding the same files. Hub downloads go to the standard Hugging Face cache, the same
place `ChatterboxTTS.from_pretrained()` reads, so a fetched model loads without a network.
No package registry ships these weights: on a machine without the hub, Chatterbox is
simply not available and the TTS falls back to Piper.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from . import ModelStatus

NAME = "tts-chatterbox"
DEFAULT_REPO = "ResembleAI/chatterbox"
REQUIRED_FILES = ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json")
BUILTIN_VOICE = "conds.pt"          # optional: without it a reference voice must be configured
HUB_FILES = REQUIRED_FILES + (BUILTIN_VOICE,)
NOT_OFFLINE = "Chatterbox weights not available offline; TTS will use the fallback engine"


def is_local_spec(model: str) -> bool:
    """A path rather than a hub id: exists, or is written like a path (/x, ./x, ~/x)."""
    return Path(model).expanduser().is_dir() or model.startswith(("/", ".", "~"))


def missing_files(directory: Path) -> list[str]:
    return [f for f in REQUIRED_FILES if not (directory / f).is_file()]


def cached_snapshot(repo_id: str) -> Path | None:
    """The directory of a complete hub download in the local cache, without any network."""
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(repo_id, f) for f in REQUIRED_FILES]
    if all(isinstance(p, str) for p in found):
        return Path(found[0]).parent
    return None


def resolve_local(settings: Settings) -> tuple[Path | None, str]:
    """(directory to load with from_local, where it came from), or (None, why not)."""
    spec = settings.tts.chatterbox_model
    if is_local_spec(spec):
        directory = Path(spec).expanduser()
        if not directory.is_dir():
            return None, f"directory {directory} does not exist (tts.chatterbox_model)"
        missing = missing_files(directory)
        if missing:
            return None, f"{directory} lacks {', '.join(missing)} (tts.chatterbox_model)"
        return directory, "local directory"
    try:
        snapshot = cached_snapshot(spec)
    except ImportError:
        return None, "huggingface_hub is not installed"
    if snapshot is None:
        return None, f"{spec} is not in the Hugging Face cache yet"
    return snapshot, f"hub {spec} (cached)"


def status(settings: Settings) -> ModelStatus:
    """Offline check only (no network): called at every start to pick the TTS engine."""
    spec = settings.tts.chatterbox_model
    directory, source = resolve_local(settings)
    if directory is not None:
        note = "" if (directory / BUILTIN_VOICE).is_file() or settings.tts.voice else \
            "no built-in voice (conds.pt): set tts.voice to a reference clip"
        return ModelStatus(NAME, not note, str(directory), source, note)
    if is_local_spec(spec):
        return ModelStatus(NAME, False, spec, "local directory", source)
    how = "offline mode (models.offline)" if settings.models.offline else \
        "run `voiced models fetch` on a machine that reaches the Hugging Face hub (~3 GB)"
    return ModelStatus(NAME, False, spec, f"hub {spec}", f"{NOT_OFFLINE}. {source}; {how}.")


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """A quick TCP check of the hub endpoint. Without it an unreachable hub costs ~25 s of
    huggingface_hub's own retries before it gives up. Skipped (assumed reachable) behind
    a proxy, where only the proxy knows."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True, "behind a proxy"
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return False, f"{url.hostname}:{port} unreachable ({exc.strerror or exc})"
    return True, ""


def download(repo_id: str, log: Callable[[str], None] = print) -> Path:
    """Download the hub files into the Hugging Face cache; raises on any failure."""
    from huggingface_hub import hf_hub_download

    from .progress import hub_progress

    path = None
    for name in HUB_FILES:
        log(f"chatterbox: fetching {repo_id}/{name}")
        with hub_progress(f"chatterbox: {repo_id}") as bar:
            path = hf_hub_download(repo_id=repo_id, filename=name, tqdm_class=bar)
    return Path(path).parent


def fetch(settings: Settings, log: Callable[[str], None] = print) -> ModelStatus:
    current = status(settings)
    spec = settings.tts.chatterbox_model
    if current.ready or is_local_spec(spec):
        return current
    if settings.models.offline:
        log(f"chatterbox: {NOT_OFFLINE} (models.offline = true)")
        return current
    reachable, why = hub_reachable()
    if not reachable:
        log(f"chatterbox: {NOT_OFFLINE} ({why})")
        return ModelStatus(NAME, False, spec, f"hub {spec}", f"{NOT_OFFLINE}: the hub is {why}.")
    try:
        download(spec, log)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; all mean "not here"
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log(f"chatterbox: download failed ({reason})")
        return ModelStatus(NAME, False, spec, f"hub {spec}",
                           f"{NOT_OFFLINE}. The hub could not be reached ({reason}).")
    return status(settings)
