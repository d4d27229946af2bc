"""`voiced doctor --wake`: wake word scores from recordings and from the (virtual) microphone."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import espeak_wav

pytestmark = pytest.mark.slow


def doctor_wake(*args, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voiced", "doctor", "--wake", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_scores_recordings_and_reports_detections(tmp_path):
    wake = espeak_wav("hey jarvis", tmp_path / "wake.wav")
    other = espeak_wav("the weather today is sunny with a light breeze", tmp_path / "other.wav")
    out = doctor_wake("--file", str(wake), "--file", str(other))
    print(out.stdout)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split(f"-- {other}")
    assert "DETECTED hey_jarvis" in first and "1 detection(s) at threshold 0.5" in first
    assert "DETECTED" not in second and "0 detection(s)" in second
    assert "[" in first and "|" in first.split("DETECTED")[0], "a score bar with the threshold mark"


def test_unreadable_recording_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    out = doctor_wake("--file", str(bad))
    assert out.returncode == 65 and "Traceback" not in out.stderr, out.stderr
    assert "bad.wav" in (out.stdout + out.stderr)


def test_live_scores_from_the_microphone(pulse_server, tmp_path):
    wake = espeak_wav("hey jarvis", tmp_path / "wake.wav")
    env = {k: v for k, v in pulse_server.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    proc = subprocess.Popen([sys.executable, "-m", "voiced", "doctor", "--wake", "--seconds", "8"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(4)   # model load and the microphone opening
    pulse_server.play_into_mic(wake).wait(10)
    out, _ = proc.communicate(timeout=30)
    print(out)
    assert proc.returncode == 0
    assert "-- microphone" in out and "DETECTED hey_jarvis" in out
