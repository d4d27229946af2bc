"""voiced/systemd.py against a real unix datagram socket standing in for systemd."""
from __future__ import annotations

import itertools
import logging
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from voiced.systemd import Notifier, Watchdog


class FakeSystemd:
    """A bound AF_UNIX datagram socket: what $NOTIFY_SOCKET points at under systemd."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def messages(self, window: float = 0.2) -> list[tuple[float, str]]:
        """(arrival time, text) of every datagram arriving within `window` seconds."""
        out, end = [], time.monotonic() + window
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            out.append((time.monotonic(), data.decode()))
        return out

    def texts(self, window: float = 0.2) -> list[str]:
        return [m for _, m in self.messages(window)]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def systemd_socket(monkeypatch):
    # A short directory of our own: AF_UNIX paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="sdn") as d:
        path = str(Path(d) / "notify")
        fake = FakeSystemd(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        yield fake
        fake.close()


def test_messages(systemd_socket):
    n = Notifier()   # systemd-python (libsystemd's sd_notify): the one path
    assert n.enabled and n.backend == "systemd-python"
    assert n.ready("listening for hey_jarvis")
    assert systemd_socket.texts() == ["READY=1\nSTATUS=listening for hey_jarvis"]

    assert n.status("transcribing") and n.status("idle")
    assert not n.status("idle")  # unchanged: not sent again
    assert not n.status("idle")
    assert systemd_socket.texts() == ["STATUS=transcribing", "STATUS=idle"]

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    (reload_msg,) = systemd_socket.texts()
    fields = dict(f.split("=", 1) for f in reload_msg.split("\n"))
    assert fields["RELOADING"] == "1" and before <= int(fields["MONOTONIC_USEC"]) <= after

    assert n.stopping() and n.watchdog()
    assert systemd_socket.texts() == ["STOPPING=1", "WATCHDOG=1"]


def test_status_after_ready_is_deduped(systemd_socket):
    n = Notifier()
    n.ready("idle")
    assert not n.status("idle")
    assert systemd_socket.texts() == ["READY=1\nSTATUS=idle"]


def test_abstract_socket(monkeypatch):
    name = f"voiced-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().ready("up")
        assert fake.texts() == ["READY=1\nSTATUS=up"]
    finally:
        fake.close()


def test_watchdog_interval(systemd_socket, monkeypatch):
    assert Notifier().watchdog_interval() == pytest.approx(0.2)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval() == pytest.approx(0.2)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert Notifier().watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("", "0", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert Notifier().watchdog_interval() is None


def test_send_failure_is_logged_once_and_never_raises(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    n = Notifier()
    with caplog.at_level(logging.WARNING, logger="voiced.systemd"):
        assert not n.ready("x") and not n.watchdog() and not n.stopping()
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


def test_everything_is_a_noop_without_notify_socket(monkeypatch):
    with tempfile.TemporaryDirectory(prefix="sdn") as d:
        fake = FakeSystemd(str(Path(d) / "notify"))  # exists, but nobody is told about it
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        n = Notifier()
        assert not n.enabled and n.backend == "none"
        assert not any([n.ready("x"), n.status("y"), n.reloading(), n.stopping(), n.watchdog()])
        assert n.watchdog_interval() is None
        calls = []
        dog = Watchdog(n, lambda calls=calls: calls.append(1) or (True, "ok"), 0.05)
        dog.start()
        dog.join(1.0)
        assert not dog.is_alive() and not dog.active and calls == [] and dog.pings == 0
        dog.stop()
        assert fake.texts(0.3) == []
        fake.close()


def test_watchdog_without_interval_does_nothing(systemd_socket):
    dog = Watchdog(Notifier(), lambda: (True, "ok"), None)
    dog.start()
    dog.join(1.0)
    assert not dog.active and systemd_socket.texts(0.3) == []


def test_watchdog_cadence(systemd_socket):
    n = Notifier()
    dog = Watchdog(n, lambda: (True, "audio flowing"), n.watchdog_interval())
    dog.start()
    try:
        pings = systemd_socket.messages(1.1)
    finally:
        dog.stop()
    assert {m for _, m in pings} == {"WATCHDOG=1"}
    # WATCHDOG_USEC=400000 -> a ping every 0.2 s: at 0, 0.2, ... 1.0 s.
    assert 5 <= len(pings) <= 7, [round(t - pings[0][0], 3) for t, _ in pings]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(pings)]
    assert 0.15 <= statistics.median(gaps) <= 0.25, gaps
    assert dog.pings == len(pings)


def test_watchdog_stops_while_not_alive_and_resumes(systemd_socket, caplog):
    state = {"alive": True, "reason": "audio flowing"}
    n = Notifier()
    dog = Watchdog(n, lambda: (state["alive"], state["reason"]), 0.1)
    with caplog.at_level(logging.INFO, logger="voiced.systemd"):
        dog.start()
        try:
            assert len(systemd_socket.texts(0.55)) >= 4
            state.update(alive=False, reason="no audio frame processed for 12.0 s (limit 10 s)")
            time.sleep(0.15)  # a tick already past its check may still land
            systemd_socket.messages(0.05)
            assert systemd_socket.texts(0.6) == []  # ~6 ticks, none pinged
            assert not dog.healthy and "no audio frame" in dog.reason
            state.update(alive=True, reason="audio flowing")
            resumed = systemd_socket.messages(0.45)
        finally:
            dog.stop()
    assert len(resumed) >= 3 and {m for _, m in resumed} == {"WATCHDOG=1"}
    assert dog.healthy and not dog.is_alive()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "no audio frame processed for 12.0 s" in errors[0]
    assert any("alive again" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_a_failing_check_counts_as_not_alive(systemd_socket, caplog):
    def broken():
        raise RuntimeError("pipeline lock poisoned")

    dog = Watchdog(Notifier(), broken, 0.1)
    with caplog.at_level(logging.ERROR, logger="voiced.systemd"):
        assert not dog.tick() and not dog.tick()
    assert not dog.healthy and "pipeline lock poisoned" in dog.reason
    assert len(caplog.records) == 1 and "pipeline lock poisoned" in caplog.records[0].getMessage()
    assert systemd_socket.texts(0.2) == []


def test_stop_from_another_thread_is_prompt(systemd_socket):
    dog = Watchdog(Notifier(), lambda: (True, "ok"), 5.0)
    dog.start()
    systemd_socket.messages(0.1)
    t0 = time.monotonic()
    threading.Thread(target=dog.stop).start()
    dog.join(2.0)
    assert not dog.is_alive() and time.monotonic() - t0 < 1.0


def _snap(state="idle", step_age=0.1, state_age=0.0, mic=(True, True, "48000 Hz, 1 ch", 0.1), hung=0):
    from voiced.core.health import MicFacts, Snapshot
    from voiced.pipeline import PipelineState

    now = 1000.0
    started, ok, detail, age = mic
    return Snapshot(PipelineState(state), now - state_age, now - step_age, mic=MicFacts(started, ok, "mic", detail, age),
                    hung_stages=hung), now


@pytest.mark.parametrize("kw, alive, words", [
    ({}, True, "last frame 0.1 s ago"),
    ({"state": "transcribing", "state_age": 3.0}, True, "transcribing for 3.0 s"),
    ({"step_age": 12.0}, False, "core loop stuck: no step for 12.0 s (limit 10 s)"),
    ({"state": "speaking", "state_age": 90.0, "step_age": 12.0}, False, "core loop stuck"),  # checked first
    ({"state": "thinking", "state_age": 61.5}, False, "stage thinking running for 61.5 s (limit 60 s)"),
    ({"state_age": 1e9}, True, "last frame"),  # idle: the state's age is irrelevant
    ({"hung": 2}, False, "2 stages in a row were abandoned"),
    # No microphone is degraded, never dead: the watchdog keeps pinging, the reason says why.
    ({"mic": (True, False, "no default input device", 1e9)}, True, "mic down: no default input device"),
    ({"mic": (False, False, "not started", float("inf"))}, True, "no microphone in use"),
    ({"state": "starting", "state_age": 200.0}, True, "starting"),
])
def test_liveness_from_the_snapshot(kw, alive, words):
    from voiced.core.health import liveness

    snap, now = _snap(**kw)
    ok, reason = liveness(snap, now, 10.0, 60.0, 2)
    assert ok is alive and words in reason, reason


@pytest.mark.parametrize("state, ready, words", [
    ("starting", False, "starting"), ("idle", True, "idle"), ("transcribing", False, "busy: transcribing"),
    ("listening", False, "busy: listening"), ("stopping", False, "stopping"),
])
def test_readiness_from_the_snapshot(state, ready, words):
    from voiced.core.health import readiness

    snap, _now = _snap(state=state)
    ok, reason = readiness(snap)
    assert ok is ready and words in reason
