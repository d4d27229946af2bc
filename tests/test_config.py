"""Config: precedence, env overrides, and each kind of bad value -> exit 78 naming key and file."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from voiced.config import EX_CONFIG, SHIPPED_DEFAULT, ConfigError, Settings, find_config, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("VOICED_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))   # no ~/.config/voiced here


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_default_lists_every_setting_with_its_default():
    data = tomllib.loads(SHIPPED_DEFAULT.read_text())
    defaults = Settings.model_construct()
    for section, model in Settings.model_fields.items():
        section_defaults = getattr(defaults, section)
        assert section in data, f"[{section}] missing from the shipped config"
        for key in type(section_defaults).model_fields:
            assert key in data[section], f"{section}.{key} missing from the shipped config"
            value = getattr(section_defaults, key)
            shipped = data[section][key]
            if isinstance(value, tuple) and isinstance(shipped, str):
                shipped = [shipped]          # a OneOrMany setting written as one string
            assert (tuple(shipped) if isinstance(shipped, list) else shipped) == value, f"{section}.{key}"
    assert (Path(__file__).parents[1] / "config" / "voiced.toml").read_text() == SHIPPED_DEFAULT.read_text()


def test_precedence_explicit_env_file_then_default(tmp_path, monkeypatch):
    assert find_config() == SHIPPED_DEFAULT
    user = write(tmp_path / "home/.config/voiced/voiced.toml", "[wake]\nthreshold = 0.61\n")
    assert find_config() == user
    envfile = write(tmp_path / "env.toml", "[wake]\nthreshold = 0.62\n")
    monkeypatch.setenv("VOICED_CONFIG", str(envfile))
    assert find_config() == envfile
    explicit = write(tmp_path / "cli.toml", "[wake]\nthreshold = 0.63\n")
    settings, path = load_settings(explicit)
    assert path == explicit and settings.wake.threshold == 0.63
    settings, _ = load_settings()
    assert settings.wake.threshold == 0.62
    assert settings.stt.model == "openai/whisper-base.en"   # unset keys keep their defaults


def test_env_overrides_file_value(tmp_path, monkeypatch):
    cfg = write(tmp_path / "c.toml", "[wake]\nthreshold = 0.3\nmodels = [\"alexa\"]\n[stt]\ndevice = \"cuda\"\n")
    monkeypatch.setenv("VOICED_WAKE__THRESHOLD", "0.7")
    monkeypatch.setenv("VOICED_STT__DEVICE", "cpu")
    monkeypatch.setenv("VOICED_RESPONDER__COMMAND", '["/bin/echo", "hi"]')
    settings, _ = load_settings(cfg)
    assert settings.wake.threshold == 0.7
    assert settings.wake.models == ("alexa",)
    assert settings.stt.device == "cpu"
    assert settings.responder.command == ("/bin/echo", "hi")


def test_settings_are_frozen():
    settings, _ = load_settings(SHIPPED_DEFAULT)
    with pytest.raises(Exception):
        settings.wake.threshold = 0.9


@pytest.mark.parametrize("text, key, words", [
    ("[wake]\nthreshold = 1.5\n", "wake.threshold", "less than 1"),
    ("[wake]\nthreshold = \"high\"\n", "wake.threshold", "valid number"),
    ("[stt]\ndevice = \"tpu\"\n", "stt.device", "'auto', 'cuda' or 'cpu'"),
    ("[stt]\nengine = \"whisper.cpp\"\n", "stt.engine", "'auto', 'faster-whisper', 'transformers' or 'wyoming'"),
    ("[vad]\nsilence = 2\n", "vad.silence", "unknown setting"),
    ("[wake]\nmodels = []\n", "wake.models", "at least one"),
    ("[sound]\nx = 1\n", "sound", "unknown setting"),
    ("[responder]\nkind = \"command\"\n", "responder.command", "must be set"),
    ("[audio]\nchunk_ms = 5\n", "audio.chunk_ms", "greater than or equal to 10"),
    ("[voices]\nmin_clip_s = 20\nmax_clip_s = 10\n", "voices.min_clip_s", "no clip could pass"),
])
def test_bad_values_name_key_and_file(tmp_path, text, key, words):
    cfg = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    msg = str(err.value)
    assert key in msg and words in msg and str(cfg) in msg


def test_bad_env_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICED_VAD__MAX_S", "forever")
    with pytest.raises(ConfigError) as err:
        load_settings(SHIPPED_DEFAULT)
    assert "vad.max_s" in str(err.value) and "VOICED_VAD__MAX_S" in str(err.value)


def test_toml_syntax_error_and_missing_file(tmp_path):
    cfg = write(tmp_path / "broken.toml", "[wake\nthreshold = 0.5\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_cli_exits_78_without_traceback(tmp_path):
    cfg = write(tmp_path / "bad.toml", "[wake]\nthreshold = 7\n")
    done = subprocess.run([sys.executable, "-m", "voiced", "--config", str(cfg), "run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EX_CONFIG
    assert "wake.threshold" in done.stderr and str(cfg) in done.stderr
    assert "Traceback" not in done.stderr


def test_the_old_watchdog_key_still_works_from_a_file_and_the_environment(tmp_path, monkeypatch):
    """[watchdog] frame_deadline_s is loop_deadline_s's old name: both a file and VOICED_ use it."""
    from voiced.config import load_settings

    path = tmp_path / "old.toml"
    path.write_text("[watchdog]\nframe_deadline_s = 12\n")
    assert load_settings(path)[0].watchdog.loop_deadline_s == 12
    monkeypatch.setenv("VOICED_WATCHDOG__FRAME_DEADLINE_S", "7")
    assert load_settings(path)[0].watchdog.loop_deadline_s == 7
