"""Logging reaches journald through its real socket protocol, with the turn/stage fields,
and stderr unless stderr already is the journal."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from voiced.logs import JOURNAL_SOCKET

SNIPPET = """
import logging, sys
from voiced import logs
logs.setup_logging("INFO")
logs.set_context(lambda: (7, "transcribing"))
logging.getLogger("voiced.test").info("hello journal")
"""


@pytest.fixture()
def journal_socket():
    """journald's datagram socket, served by the test (no journald runs here)."""
    path = Path(JOURNAL_SOCKET)
    if path.exists():
        pytest.skip(f"{path} exists: a real journald runs here; not touching it")
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield sock
    sock.close()
    path.unlink()
    if created:
        path.parent.rmdir()


def test_records_carry_turn_and_stage_fields(journal_socket):
    done = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = journal_socket.recv(65536).decode(errors="replace")
    fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
    assert fields["MESSAGE"] == "hello journal"
    assert fields["VOICED_TURN"] == "7" and fields["VOICED_STAGE"] == "transcribing"
    assert fields["SYSLOG_IDENTIFIER"] == "voiced" and fields["PRIORITY"] == "6"
    assert "hello journal" in done.stderr   # stderr is a terminal/pipe here, not the journal


def test_no_duplicate_on_stderr_when_stderr_is_the_journal(journal_socket, tmp_path):
    err = tmp_path / "stderr.txt"
    with open(err, "w") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run([sys.executable, "-c", SNIPPET], stderr=fh, env=env, check=True, timeout=60)
    assert "hello journal" in journal_socket.recv(65536).decode(errors="replace")
    assert "hello journal" not in err.read_text()


def test_stderr_only_without_journald():
    if Path(JOURNAL_SOCKET).exists():
        pytest.skip("journald runs here")
    done = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=60)
    assert "hello journal" in done.stderr
