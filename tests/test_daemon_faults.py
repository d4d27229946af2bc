"""The daemon under audio faults, as a subprocess on its own PulseAudio server: it starts
(degraded, READY sent) with no audio server, picks the microphone up when the server
appears, and hears the wake word again after the server dies and comes back. Policy: no
microphone = degraded but alive: the watchdog keeps pinging (systemd never restarts voiced
for a lost mic), while STATUS= and /healthz say the mic is down."""
from __future__ import annotations

import time

import httpx
import pytest

from support.pulse import PulseHarness
from test_e2e_daemon import DaemonProcess, NotifySocket, free_port, utterance

pytestmark = pytest.mark.e2e


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0   # utime + stime, in clock ticks


def test_no_server_at_start_then_restart_mid_listen(tmp_path):
    harness = PulseHarness()   # not started: the daemon comes up without an audio server
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {k: v for k, v in harness.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    port = free_port()
    env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1000000", VOICED_AUDIO__REOPEN_BACKOFF_MAX_S="2",
               VOICED_AUDIO__READ_TIMEOUT_S="2", VOICED_WATCHDOG__LOOP_DEADLINE_S="3", VOICED_WEB__PORT=str(port))
    daemon = DaemonProcess(env, tmp_path)

    def pings_within(seconds: float) -> int:
        return len([t for t, _ in notify.fields("WATCHDOG=1") if t > time.monotonic() - seconds])

    def healthz() -> tuple[int, dict]:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        except httpx.HTTPError as exc:
            return 0, {"error": str(exc)}
        return r.status_code, r.json()

    try:
        daemon.wait_for(r"listening for hey_jarvis", timeout=240)
        end = time.monotonic() + 10
        while time.monotonic() < end and not notify.fields("READY=1"):
            time.sleep(0.1)
        ready = [f for _, f in notify.fields("STATUS=")]
        assert notify.fields("READY=1"), "READY=1 not sent although the daemon runs degraded"
        assert any("MIC DOWN" in s for s in ready), ready
        # No microphone for longer than the loop deadline: alive, degraded, pinging (finding 2).
        time.sleep(4)
        code, body = healthz()
        assert code == 200 and body["reason"].startswith("mic down:"), body
        assert pings_within(2.0) >= 2, "no watchdog pings without a microphone: systemd would restart-loop"
        ready_r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready_r.status_code == 200, ready_r.text   # uploads are served without a mic

        harness.start()
        t0 = time.monotonic()
        daemon.wait_for(r"microphone .* is back", timeout=20)
        print(f"microphone picked up {time.monotonic() - t0:.2f} s after the server started")
        wake = utterance(tmp_path, [0.5, "hey jarvis", 1.0])
        mark = len(daemon.lines)
        harness.play_into_mic(wake).wait(10)
        daemon.wait_for(r"wake word hey_jarvis", timeout=10, start=mark)
        daemon.wait_for(r"turn \d+ .*no speech", timeout=20, start=mark)

        # The audio server dies mid-listen and comes back.
        mark = len(daemon.lines)
        harness.kill()
        daemon.wait_for(r"microphone .* failed", timeout=10, start=mark)
        cpu0, wall0 = cpu_seconds(daemon.proc.pid), time.monotonic()
        time.sleep(4)
        cpu_share = (cpu_seconds(daemon.proc.pid) - cpu0) / (time.monotonic() - wall0)
        harness.start()
        t0 = time.monotonic()
        daemon.wait_for(r"microphone .* is back", timeout=20, start=mark)
        back = time.monotonic() - t0
        failures = [line for line in daemon.lines[mark:] if "microphone" in line and "failed" in line]
        print(f"after restart: back in {back:.2f} s; daemon CPU while down {cpu_share:.1%}; "
              f"failure lines logged: {len(failures)}")
        assert cpu_share < 0.15, "busy loop while the audio server was down"
        assert len(failures) <= 2, "the same device error was logged over and over"
        mark = len(daemon.lines)
        harness.play_into_mic(wake).wait(10)
        daemon.wait_for(r"wake word hey_jarvis", timeout=10, start=mark)
        daemon.wait_for(r"turn \d+ .*no speech", timeout=20, start=mark)

        # A stalled capture (source suspended: reads block, no frames): degraded, not dead.
        # The watchdog keeps pinging; STATUS= and /healthz say the mic is down, from facts.
        assert pings_within(2.0) >= 2, "no watchdog pings while healthy"
        code, body = healthz()
        assert code == 200 and body["reason"].startswith("last frame"), body
        harness.pactl("suspend-source", "mic", "1")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and not healthz()[1].get("reason", "").startswith("mic down"):
            time.sleep(0.2)
        code, body = healthz()
        noticed = time.monotonic() - t0
        assert code == 200 and body["reason"].startswith("mic down: no audio for"), body
        statuses = [f for _, f in notify.fields("STATUS=")]
        assert "MIC DOWN" in statuses[-1], statuses[-3:]
        time.sleep(2.5)
        assert pings_within(2.0) >= 2, "the watchdog stopped pinging for a lost microphone: systemd would restart-loop"
        harness.pactl("suspend-source", "mic", "0")
        t1 = time.monotonic()
        while time.monotonic() - t1 < 30 and not healthz()[1].get("reason", "").startswith("last frame"):
            time.sleep(0.2)
        code, body = healthz()
        print(f"stall: /healthz said 'mic down' {noticed:.1f} s after the source was suspended, "
              f"'last frame' again {time.monotonic() - t1:.1f} s after it came back; pings never stopped")
        assert code == 200 and body["reason"].startswith("last frame"), body
        statuses = [f for _, f in notify.fields("STATUS=")]
        assert "MIC DOWN" not in statuses[-1], statuses[-3:]
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
        harness.stop()
