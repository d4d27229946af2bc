"""Web fixtures: ONE real daemon per session (real Whisper, real Piper, the builtin
responder; no audio devices are opened), the real uvicorn server on a free port, and test
recordings made with ffmpeg from tests/data/jfk_16k.flac."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ffmpeg(*args: str) -> None:
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is not installed (scripts/setup.sh installs it)")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """jfk as the browser sends it (webm/opus), a 44 s version of it, and a 16-bit WAV."""
    out = tmp_path_factory.mktemp("recordings")
    src = str(DATA / "jfk_16k.flac")
    files = {"webm": out / "jfk.webm", "long_webm": out / "jfk_x4.webm", "wav": out / "jfk.wav"}
    ffmpeg("-i", src, "-c:a", "libopus", "-b:a", "32k", str(files["webm"]))
    ffmpeg("-stream_loop", "3", "-i", src, "-c:a", "libopus", "-b:a", "12k", str(files["long_webm"]))
    ffmpeg("-i", src, "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", str(files["wav"]))
    return files


@pytest.fixture(scope="session")
def web_daemon(fast_whisper_settings, oww_dir, tmp_path_factory):
    """The daemon with its models loaded and its owner running on a thread, without audio
    devices (no microphone: degraded, as on a box without one), shared by the web tests.
    Both Whisper back ends' weights are prepared, so stt.engine auto picks faster-whisper;
    its voices are in a temporary folder (the API tests add and remove some)."""
    from voiced.app import Daemon
    from voiced.config import VoicesSettings

    voices = VoicesSettings(dir=str(tmp_path_factory.mktemp("voices")))
    daemon = Daemon(fast_whisper_settings.model_copy(update={"voices": voices}))
    daemon.load()
    owner = daemon.run_in_thread(mic=False)
    wait_state(daemon, "idle")
    yield daemon
    daemon.stop("test session over")
    owner.join(5)
    assert not owner.is_alive(), "the owner did not stop"
    daemon.shutdown()
    if hasattr(daemon.tts, "close"):   # the Piper worker process
        daemon.tts.close()


def wait_state(daemon, *states: str, timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    while daemon.snapshot().state.value not in states and time.monotonic() < end:
        time.sleep(0.02)
    assert daemon.snapshot().state.value in states, daemon.snapshot()
    return daemon.snapshot().state.value


def settle(daemon, timeout: float = 30.0) -> None:
    """Back to idle: wait for a say/utterance worker to finish; end a triggered turn that has
    no microphone behind it (through the owner, like any other caller)."""
    state = wait_state(daemon, "idle", "listening", timeout=timeout)
    if state == "listening":
        daemon.cancel_turn("test over")
        wait_state(daemon, "idle")


@pytest.fixture()
def daemon(web_daemon):
    """The shared daemon, idle before the test and brought back to idle after it."""
    settle(web_daemon)
    yield web_daemon
    settle(web_daemon)


@pytest.fixture(scope="session")
def web_server(web_daemon):
    """The real server (uvicorn on its own thread) with the default web settings on a free port."""
    from voiced.config import WebSettings
    from voiced.web import start_web_server

    server = start_web_server(web_daemon, WebSettings(port=free_port()))
    yield server
    server.stop()
    assert not server.thread.is_alive(), "the web server thread did not stop"


@pytest.fixture()
def http(web_server, daemon):
    import httpx

    with httpx.Client(base_url=web_server.url, timeout=120) as client:
        yield client
