"""Two voiced daemons on this machine: a Wyoming server (no audio devices: the GPU box) and a
satellite on the virtual PulseAudio devices whose wake word, STT and TTS are the server's. A spoken turn
goes through the server; the server is killed mid-turn and the satellite answers with its
local models; the server comes back, the satellite reconnects on its own, and the next turn
goes through the server again."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

import httpx
import pytest
from support.pulse import PulseHarness
from support.wyoming_peer import free_port
from test_e2e_daemon import DaemonProcess, assert_time_spoken, record_while, reply_said, utterance

pytestmark = pytest.mark.e2e


def clean_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}


def start_server(port: int, tmp) -> DaemonProcess:
    no_audio = PulseHarness()    # never started: this daemon has no audio server at all
    env = clean_env(no_audio.env)
    env.update(VOICED_WYOMING__ENABLED="true", VOICED_WYOMING__PORT=str(port), VOICED_WEB__PORT=str(free_port()))
    server = DaemonProcess(env, tmp)
    server.web_port = int(env["VOICED_WEB__PORT"])
    return server


def wyoming_status(web_port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{web_port}/api/status", timeout=10).json()["wyoming"]


def remote_states(web_port: int) -> dict:
    return {r["role"]: r["state"] for r in wyoming_status(web_port)["remotes"]}


def wake_status(web_port: int) -> dict:
    return next(r for r in wyoming_status(web_port)["remotes"] if r["role"] == "wake")


def wait_states(web_port: int, want: dict, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = remote_states(web_port)
        if states == want:
            return states
        time.sleep(0.2)
    pytest.fail(f"remote health on the status page is {remote_states(web_port)}, not {want}")


def assert_wake_scored_by_the_server(satellite, web_port: int, before: dict) -> None:
    """The satellite's last wake word came from the server's detector, not its local one."""
    after = wake_status(web_port)
    heard = [line for line in satellite.lines if "wake word" in line or "wake: remote" in line][-6:]
    assert after["requests"]["remote"] == before["requests"]["remote"] + 1 and \
        after["requests"]["local"] == before["requests"]["local"], \
        f"the satellite scored the wake word locally, not on the server: {before} -> {after}; " + "\n".join(heard)


def spoken_turn(satellite, pulse_server, tmp, piper_voice, whisper_stt, on_wake=None) -> str:
    """Ask the time through the satellite's microphone; the reply from its speaker must say it."""
    wav = utterance(tmp, [0.5, "hey jarvis", 0.7, ("piper", "What time is it?"), 2.0], piper_voice)
    mark, asked = len(satellite.lines), dt.datetime.now()

    def act():
        pulse_server.play_into_mic(wav)
        satellite.wait_for(r"wake word hey_jarvis", timeout=15, start=mark)
        if on_wake:
            on_wake()
        satellite.wait_for(r"turn \d+ .*answered", timeout=90, start=mark)

    audio = record_while(pulse_server, tmp / "spk.raw", act, 1.5)
    assert_time_spoken(audio, whisper_stt, asked, reply_said(satellite, mark))
    return satellite.wait_for(r"turn \d+ .*answered.*", timeout=1, start=mark).group(0)


def test_satellite_turns_through_the_server_survive_its_death(pulse_server, tmp_path, piper_voice, whisper_stt):
    port, web_port = free_port(), free_port()
    (tmp_path / "server").mkdir()
    server = start_server(port, tmp_path / "server")
    env = clean_env(pulse_server.env)
    uri = f"tcp://127.0.0.1:{port}"
    env.update(VOICED_STT__ENGINE="wyoming", VOICED_STT__WYOMING_URI=uri, VOICED_TTS__ENGINE="wyoming",
               VOICED_TTS__WYOMING_URI=uri, VOICED_WAKE__ENGINE="wyoming", VOICED_WAKE__WYOMING_URI=uri,
               VOICED_WYOMING__RECONNECT_BACKOFF_S="0.5",
               VOICED_WYOMING__RECONNECT_BACKOFF_MAX_S="2", VOICED_WEB__PORT=str(web_port),
               VOICED_VAD__NO_SPEECH_TIMEOUT_S="3", VOICED_CONVERSATION__FOLLOW_UP_S="0")
    satellite = DaemonProcess(env, tmp_path)     # starts beside the server: it may be up first
    try:
        server.wait_for(r"wyoming server listening on tcp://127.0.0.1:\d+", timeout=240)
        satellite.wait_for(r"listening for hey_jarvis", timeout=240)
        wait_states(web_port, {"stt": "up", "tts": "up", "wake": "up"}, timeout=15)

        # 1. A full spoken turn, its STT and TTS done by the server.
        served, wake_before = len(server.lines), wake_status(web_port)
        assert wake_before["scoring"] in ("remote", None), wake_before   # None: no frame scored yet
        t0 = time.monotonic()
        line = spoken_turn(satellite, pulse_server, tmp_path, piper_voice, whisper_stt)
        assert_wake_scored_by_the_server(satellite, web_port, wake_before)
        print(f"turn through the server: {line} ({time.monotonic() - t0:.1f} s with recording)", file=sys.stderr)
        server.wait_for(r"wyoming: wake word hey_jarvis", timeout=5)   # this server's own log, from its start
        server.wait_for(r"wyoming: transcribed .*time", timeout=5, start=served)
        server.wait_for(r"wyoming: synthesised", timeout=5, start=served)
        on_server = wyoming_status(server.web_port)["server"]
        assert on_server["uri"] == uri and on_server["queue"]["served"] >= 2 and on_server["connections"] >= 3, on_server

        # 2. The server dies as the turn starts: the satellite answers with its local models.
        mark = len(satellite.lines)
        (tmp_path / "t2").mkdir()
        spoken_turn(satellite, pulse_server, tmp_path / "t2", piper_voice, whisper_stt, on_wake=server.proc.kill)
        satellite.wait_for(r"stt: remote tcp://\S+ failed .*the local (faster-)?whisper answers meanwhile", timeout=1, start=mark)
        states = remote_states(web_port)
        assert states["stt"] == "down" and states["wake"] == "down", states
        shown = subprocess.run([sys.executable, "-m", "voiced", "status", "--url", f"http://127.0.0.1:{web_port}"],
                               capture_output=True, text=True, timeout=60, env=env, check=True).stdout
        assert re.search(r"remote STT +tcp://\S+: down \(.*Connect call failed", shown), shown

        # 3. The server comes back; the satellite reconnects by itself, every role (the wake word
        # stream as soon as the STT or TTS reaches it) and says so; the next turn uses it.
        mark = len(satellite.lines)
        server = start_server(port, tmp_path / "server")
        server.wait_for(r"wyoming server listening", timeout=240)
        for role in ("stt", "wake"):                  # both were down (step 2); the TTS is checked below
            satellite.wait_for(rf"{role}: remote tcp://\S+ is back", timeout=15, start=mark)
        wait_states(web_port, {"stt": "up", "tts": "up", "wake": "up"}, timeout=15)
        served, wake_before = len(server.lines), wake_status(web_port)
        (tmp_path / "t3").mkdir()
        spoken_turn(satellite, pulse_server, tmp_path / "t3", piper_voice, whisper_stt)
        assert_wake_scored_by_the_server(satellite, web_port, wake_before)
        server.wait_for(r"wyoming: wake word hey_jarvis", timeout=5)   # this server's own log, from its start
        server.wait_for(r"wyoming: transcribed .*time", timeout=5, start=served)
        server.wait_for(r"wyoming: synthesised", timeout=5, start=served)
    finally:
        assert satellite.stop() == 0, "the satellite did not stop cleanly"
        if server.proc.poll() is None:
            assert server.stop() == 0, "the server did not stop cleanly"
