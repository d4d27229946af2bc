"""The shipped systemd units: systemd-analyze accepts them silently, and they say what
voiced relies on (notify + watchdog, no restart loop on a bad config, the sandbox)."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_UNIT = ROOT / "systemd" / "voiced.service"
USER_UNIT = ROOT / "systemd" / "voiced-user.service"
INSTALLER = ROOT / "scripts" / "install-service.sh"
SYSTEM_EXEC = "/opt/voiced/.venv/bin/voiced"
USER_EXEC = "%h/.local/share/voiced/.venv/bin/voiced"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Unit file -> {section: {key: [values in order]}} (keys may repeat, unlike INI)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[current][key.strip()].append(value.strip())
    return sections


def analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    return exe


def fake_voiced(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def run_verify(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # --man=no: do not shell out to man(1) for Documentation= entries (none are man pages,
    # and man-db may be absent). Unknown keys only WARN (exit 0), hence the stderr checks.
    return subprocess.run([analyze(), *args], check=False, capture_output=True, text=True,
                          timeout=60, env=env or os.environ.copy())


def verifiable_system_unit(tmp_path: Path, extra: str = "") -> Path:
    """The system unit with only the ExecStart prefix moved under tmp_path.

    verify fails when ExecStart's binary does not exist, and /opt/voiced is not
    installed here. --root= does not help: it also re-roots every unit the file
    references (sysinit.target...). So the copy differs in that one path only.
    """
    fake_voiced(tmp_path / SYSTEM_EXEC.lstrip("/"))
    text = SYSTEM_UNIT.read_text()
    assert f"ExecStart={SYSTEM_EXEC} run" in text
    copy = tmp_path / "voiced.service"
    copy.write_text(text.replace(SYSTEM_EXEC, str(tmp_path) + SYSTEM_EXEC) + extra)
    return copy


def test_system_unit_verifies_without_warnings(tmp_path):
    result = run_verify(["verify", "--man=no", str(verifiable_system_unit(tmp_path))])
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_verify_reports_what_the_empty_stderr_check_would_catch(tmp_path):
    # Control: an unknown key and a missing binary both show up on stderr.
    unit = verifiable_system_unit(tmp_path, extra="[Service]\nNoSuchSetting=1\n")
    warned = run_verify(["verify", "--man=no", str(unit)])
    assert "Unknown key 'NoSuchSetting'" in warned.stderr
    (tmp_path / SYSTEM_EXEC.lstrip("/")).unlink()
    missing = run_verify(["verify", "--man=no", str(unit)])
    assert missing.returncode != 0 and "is not executable" in missing.stderr


def test_user_unit_verifies_without_warnings(tmp_path):
    # Verified unchanged: in --user mode %h expands to $HOME, so a fake home holding the
    # executable is enough. The user manager also needs an XDG_RUNTIME_DIR.
    home, runtime = tmp_path / "home", tmp_path / "run"
    fake_voiced(home / USER_EXEC.replace("%h/", ""))
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    result = run_verify(["--user", "verify", "--man=no", str(USER_UNIT)], env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_system_unit_exposure_stays_low():
    result = run_verify(["security", "--offline=true", str(SYSTEM_UNIT)])
    match = re.search(r"Overall exposure level for voiced\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5, result.stdout  # 1.9 with systemd 252


def test_system_unit_directives():
    unit = parse_unit(SYSTEM_UNIT)
    s, u = unit["Service"], unit["Unit"]
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["ExecStart"] == f"{SYSTEM_EXEC} run"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["WatchdogSec"] == "30" and one["TimeoutStopSec"] == "15"
    assert one["Restart"] == "on-failure" and one["RestartSec"] == "2"
    assert "78" in one["RestartPreventExitStatus"].split()
    assert u["StartLimitBurst"] and u["StartLimitIntervalSec"]
    assert one["User"] == "voiced" and one["Group"] == "voiced"
    assert {"audio", "input", "render", "video"} <= set(one["SupplementaryGroups"].split())
    assert "PYTHONUNBUFFERED=1" in s["Environment"]
    for d in ("StateDirectory", "CacheDirectory", "ConfigurationDirectory"):
        assert one[d] == "voiced"
    hardening = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
        "RestrictNamespaces": "yes", "LockPersonality": "yes", "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "DevicePolicy": "closed",
    }
    assert {k: one.get(k) for k in hardening} == hardening
    assert one["ProtectHome"] in ("yes", "true", "read-only")
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert {"char-alsa rw", "char-input r", "char-drm rw", "char-nvidia* rw"} <= set(s["DeviceAllow"])
    # torch/onnxruntime need W+X memory: this must never be switched on.
    assert "MemoryDenyWriteExecute" not in s
    assert "PrivateDevices" not in s  # would hide /dev/snd
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_user_unit_directives():
    unit = parse_unit(USER_UNIT)
    s = {k: v[-1] for k, v in unit["Service"].items()}
    assert s["Type"] == "notify" and s["WatchdogSec"]
    assert s["Restart"] == "on-failure" and "78" in s["RestartPreventExitStatus"].split()
    assert s["ExecStart"] == f"{USER_EXEC} run"
    assert "User" not in s and "MemoryDenyWriteExecute" not in s
    after = unit["Unit"]["After"][-1].split()
    assert {"pipewire-pulse.service", "pulseaudio.service"} <= set(after)
    assert "Wants" not in unit["Unit"] and "Requires" not in unit["Unit"]
    assert unit["Install"]["WantedBy"] == ["default.target"]


def test_installer_uses_the_units_prefixes():
    # ExecStart= hard-codes where the installer puts the code: keep the two in step.
    script = INSTALLER.read_text()
    assert "PREFIX=/opt/voiced\n" in script
    assert "PREFIX=$HOME/.local/share/voiced" in script
    assert "CACHE=/var/cache/voiced" in script  # = CacheDirectory=voiced
    assert subprocess.run(["bash", "-n", str(INSTALLER)], check=False).returncode == 0
