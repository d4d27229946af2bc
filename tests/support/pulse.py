"""A private PulseAudio server with a virtual microphone and speaker, for real-device tests.

mic16 is a 16 kHz mono null sink: whatever is played into it comes out of the source
"mic" (the default input). spk is the default output; its monitor records what the
daemon says. Everything lives in a temp runtime dir, never the user's audio server.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


class PulseHarness:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="voiced-pulse-"))
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.dir), "PULSE_RUNTIME_PATH": str(self.dir / "pulse"),
                    "PULSE_SERVER": f"unix:{self.dir / 'pulse' / 'native'}"}

    def start(self) -> "PulseHarness":
        if not shutil.which("pulseaudio"):
            raise RuntimeError("pulseaudio is not installed (scripts/setup.sh --test installs it)")
        # A startup script sets the defaults before the protocol module accepts clients, so a
        # client reconnecting after a restart never catches the server with other defaults.
        script = self.dir / "voiced-test.pa"
        script.write_text("\n".join([
            "load-module module-null-sink sink_name=spk rate=48000",
            "load-module module-null-sink sink_name=mic16 rate=16000 channels=1 format=s16le",
            "load-module module-remap-source master=mic16.monitor source_name=mic channels=1",
            "load-module module-always-sink",
            "set-default-sink spk",
            "set-default-source mic",
            "load-module module-native-protocol-unix",
        ]) + "\n")
        args = ["pulseaudio", "-n", "-F", str(script), "--daemonize=yes", "--exit-idle-time=-1",
                "--log-target=stderr"]
        # The server's own state (cookie, config) goes to the temp dir, not the user's home.
        subprocess.run(args, env={**self.env, "HOME": str(self.dir)}, check=True, capture_output=True, timeout=20)
        for _ in range(50):
            if self.pactl("info", check=False).returncode == 0:
                break
            time.sleep(0.1)
        return self

    def pactl(self, *args, check=True):
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10)

    def kill(self) -> None:
        """Stop the server as a crash or an audio-server restart would; start() brings it back."""
        subprocess.run(["pulseaudio", "--kill"], env={**self.env, "HOME": str(self.dir)}, capture_output=True, timeout=10)
        for _ in range(50):
            if self.pactl("info", check=False).returncode != 0:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def apply(self, monkeypatch) -> None:
        """Point this process (PyAudio via ALSA's pulse plugin) at the private server."""
        for key in ("XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH", "PULSE_SERVER"):
            monkeypatch.setenv(key, self.env[key])

    # -- talking into the mic, listening to the speaker -----------------------
    def play_into_mic(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "-d", "mic16", str(wav)], env=self.env)

    def record_speaker(self, path: Path, rate: int = 24_000) -> subprocess.Popen:
        """Raw s16le mono of everything the default sink plays, until terminated."""
        fh = open(path, "wb")
        return subprocess.Popen(["parec", "-d", "spk.monitor", f"--rate={rate}", "--channels=1",
                                 "--format=s16le", "--raw"], stdout=fh, env=self.env)


def load_raw(path: Path) -> np.ndarray:
    return np.frombuffer(Path(path).read_bytes(), dtype=np.int16).astype(np.float32) / 32768.0


def speech_segments(audio: np.ndarray, rate: int, frame_s: float = 0.02, floor_dbfs: float = -45.0,
                    gap_s: float = 0.6) -> list[tuple[float, float]]:
    """(start, end) seconds of stretches louder than floor: where something was said."""
    n = int(rate * frame_s)
    frames = len(audio) // n
    if frames == 0:
        return []
    energy = 10 * np.log10(np.mean(audio[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(energy > floor_dbfs)[0]
    segments: list[list[float]] = []
    for i in loud:
        t = i * frame_s
        if segments and t - segments[-1][1] <= gap_s:
            segments[-1][1] = t + frame_s
        else:
            segments.append([t, t + frame_s])
    return [(a, b) for a, b in segments]
