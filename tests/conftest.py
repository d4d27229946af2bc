"""Shared fixtures: settings from the shipped config, the PulseAudio harness, test audio."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
# Model and audio fixtures shared by several test modules (real weights, espeak-ng speech).
pytest_plugins = ["tests.fixtures_stt", "tests.fixtures_audio", "tests.fixtures_web"]


@pytest.fixture(scope="session", autouse=True)
def private_state_dir(tmp_path_factory):
    """voiced's state (named voices) in a temporary folder, never the user's own, also for
    the daemons and CLIs the tests start."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if saved is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = saved


@pytest.fixture(scope="session")
def settings():
    """The shipped defaults (env overrides from the caller's shell are ignored here)."""
    from voiced.config import Settings, SHIPPED_DEFAULT, load_settings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("VOICED_") and k != "VOICED_MODELS_DIR"}
    try:
        s, _ = load_settings(SHIPPED_DEFAULT)
    finally:
        os.environ.update(saved)
    assert isinstance(s, Settings)
    return s


@pytest.fixture(scope="module")
def piper_voice(settings):
    """The real Piper voice, for speaking test requests into the virtual microphone."""
    from voiced.engines.tts_piper import PiperEngine

    engine = PiperEngine(settings.tts)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def pulse_server():
    from support.pulse import PulseHarness

    harness = PulseHarness().start()
    yield harness
    harness.stop()


@pytest.fixture()
def pulse(pulse_server, monkeypatch):
    pulse_server.apply(monkeypatch)
    return pulse_server


def espeak_wav(text: str, path: Path, voice: str = "en-us", rate_16k: bool = True, speed: int = 160) -> Path:
    """Synthetic speech from espeak-ng, resampled to 16 kHz mono 16-bit if asked."""
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is not installed (scripts/setup.sh --test installs it)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    if not rate_16k:
        return raw
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    return path
