"""voiced against the REAL Wyoming programs, each a process from its own virtualenv
(scripts/wyoming_peers.sh, run by `scripts/setup.sh --test`), with local weights only:

- voiced's remote STT -> wyoming-faster-whisper (the same CTranslate2 Whisper base weights)
- voiced's remote TTS -> wyoming-piper (the packaged en_US-joe-medium voice)
- voiced's remote wake word -> wyoming-openwakeword (its own bundled models)
- wyoming-satellite with voiced's Wyoming server as its wake word service, the test playing
  Home Assistant (which runs the satellite's pipeline) with voiced's server as ASR and TTS
- wyoming-bench against voiced's Wyoming server

A missing peer venv skips (with the reason) here and FAILS with VOICED_REQUIRE_PEERS=1 (CI)."""
from __future__ import annotations

import asyncio
import logging
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures_audio import concat, espeak, silence
from fixtures_stt import DATA, JFK_REFERENCE, jfk_audio, wer
from support.wyoming_peer import free_port, synthesize, transcribe

pytestmark = pytest.mark.slow

PEERS = Path(os.environ.get("VOICED_PEERS_DIR") or
             Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voiced-tests" / "wyoming-peers")
VERSIONS = {"faster-whisper": "wyoming-faster-whisper==3.8.1", "piper": "wyoming-piper==2.5.2",
            "openwakeword": "wyoming-openwakeword==1.8.2", "satellite": "wyoming-satellite==1.0.0",
            "bench": "wyoming-bench==2026.10.0"}


def peer_bin(name: str, program: str = "python") -> Path:
    """A peer venv's program; skip (or fail under VOICED_REQUIRE_PEERS=1) if it is missing."""
    path = PEERS / name / "bin" / program
    stamp = PEERS / name / ".voiced-peer"
    if path.exists() and stamp.exists() and stamp.read_text().split()[0] == VERSIONS[name]:
        return path
    why = f"{VERSIONS[name]} is not installed in {PEERS / name}: run bash scripts/wyoming_peers.sh"
    if os.environ.get("VOICED_REQUIRE_PEERS") == "1":
        pytest.fail(why)
    print(f"SKIP: {why}", file=sys.stderr)
    pytest.skip(why)


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"peer exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"peer did not listen on {port} in {timeout:g} s:\n{log.read_text()[-3000:]}")


class Peer:
    """A real Wyoming server process on a free port, stopped at the end."""

    def __init__(self, argv: list[str], tmp: Path, name: str):
        self.port = free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        argv = [a.replace("{uri}", self.uri) for a in argv]
        self.proc = subprocess.Popen(argv, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wait_port(self.port, self.proc, self.log)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def remote(settings, **sections):
    """settings with the given sections updated; remotes get short timeouts."""
    sections["wyoming"] = {"connect_timeout_s": 3.0, "read_timeout_s": 30.0, **sections.get("wyoming", {})}
    update = {name: getattr(settings, name).model_copy(update=values) for name, values in sections.items()}
    return settings.model_copy(update=update)


# ---------------------------------------------------------------- the peers

@pytest.fixture(scope="module")
def whisper_peer(fast_whisper_settings, tmp_path_factory):
    from voiced.models import whisper_fast

    model = whisper_fast.status(fast_whisper_settings).model
    tmp = tmp_path_factory.mktemp("faster-whisper")
    peer = Peer([str(peer_bin("faster-whisper")), "-m", "wyoming_faster_whisper", "--uri", "{uri}",
                 "--model", model, "--data-dir", str(tmp), "--local-files-only", "--language", "en",
                 "--compute-type", "int8", "--beam-size", "1", "--cpu-threads", "2"], tmp, "faster-whisper")
    yield peer
    peer.stop()


def piper_voice_dir() -> Path:
    from voiced.engines.tts_piper import piper_voice_paths

    model, _config = piper_voice_paths("joe-us")
    return Path(model).parent


@pytest.fixture(scope="module")
def piper_peer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("piper")
    peer = Peer([str(peer_bin("piper")), "-m", "wyoming_piper", "--uri", "{uri}", "--voice", "en_US-joe-medium",
                 "--data-dir", str(piper_voice_dir()), "--download-dir", str(tmp), "--local-files-only"],
                tmp, "piper")
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def oww_peer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openwakeword")
    peer = Peer([str(peer_bin("openwakeword")), "-m", "wyoming_openwakeword", "--uri", "{uri}",
                 "--preload-model", "hey_jarvis"], tmp, "openwakeword")
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def voiced_server(fast_whisper_settings, faster_whisper_stt, oww_dir):
    """voiced's Wyoming server on the real faster-whisper, Piper and openWakeWord (no daemon)."""
    from voiced.config import WyomingSettings
    from voiced.engines.tts_piper import PiperEngine
    from voiced.models.openwakeword_assets import assets_dir
    from voiced.triggers.wakeword import WakeWordDetector
    from voiced.wyoming.server import WyomingServer, WyomingService

    s = fast_whisper_settings
    tts = PiperEngine(s.tts)
    tts.info = tts.load()
    service = WyomingService(WyomingSettings(enabled=True), faster_whisper_stt, tts, ("hey_jarvis",),
                             lambda: WakeWordDetector(s.wake, assets_dir(s)), s.stt.forced_language or "auto")
    server = WyomingServer(service, "127.0.0.1", free_port()).start()
    yield server
    server.stop()
    tts.close()


# ---------------------------------------------------------------- STT

def test_remote_stt_on_wyoming_faster_whisper(whisper_peer, fast_whisper_settings, faster_whisper_stt):
    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.wyoming.remote import RemoteWithFallback

    s = remote(fast_whisper_settings, stt={"engine": "wyoming", "wyoming_uri": whisper_peer.uri},
               wyoming={"fallback_local": False})
    engine = RemoteWithFallback("stt", WyomingSTT(s), None, s.wyoming)
    info = engine.load()
    try:
        assert engine.health.state == "up" and info.model.startswith("faster-whisper: "), info
        audio = jfk_audio()
        engine.transcribe(audio)                      # the peer loads its model on the first request
        remote_s, local_s, text = [], [], ""
        for _ in range(3):
            t0 = time.monotonic()
            text = engine.transcribe(audio).text
            remote_s.append(time.monotonic() - t0)
            t0 = time.monotonic()
            faster_whisper_stt.transcribe(audio)
            local_s.append(time.monotonic() - t0)
    finally:
        engine.close()
    r, loc = statistics.median(remote_s), statistics.median(local_s)
    print(f"\nwyoming-faster-whisper 3.8.1: {text!r} WER {wer(JFK_REFERENCE, text):.3f}; "
          f"remote {r * 1000:.0f} ms vs local faster-whisper {loc * 1000:.0f} ms for 11 s of speech: "
          f"the hop adds {(r - loc) * 1000:+.0f} ms (median of 3)", file=sys.stderr)
    assert wer(JFK_REFERENCE, text) == 0, text


# ---------------------------------------------------------------- TTS

def _first_audio_s(engine, text: str) -> tuple[float, list]:
    t0 = time.monotonic()
    first, chunks = None, []
    for chunk in engine.synthesize(text):
        if first is None:
            first = time.monotonic() - t0
        chunks.append(chunk)
    return first, chunks


def test_remote_tts_on_wyoming_piper_speaks_the_packaged_voice(piper_peer, fast_whisper_settings,
                                                                faster_whisper_stt):
    from voiced.audio.dsp import resample
    from voiced.engines.tts_piper import PiperEngine
    from voiced.engines.tts_wyoming import WyomingTTS

    # No voice configured: the server's default, reported as such (its list is the catalogue).
    default = WyomingTTS(remote(fast_whisper_settings, tts={"engine": "wyoming", "wyoming_uri": piper_peer.uri}))
    assert default.load().model.startswith("piper: its default voice (of "), default.info
    assert "ar_JO" not in default.info.model

    s = remote(fast_whisper_settings, tts={"engine": "wyoming", "wyoming_uri": piper_peer.uri,
                                           "wyoming_voice": "en_US-joe-medium"})
    engine = WyomingTTS(s)
    assert engine.load().model == "piper: en_US-joe-medium"
    sentence = "The weather is sunny and warm today."
    local = PiperEngine(s.tts)
    local.load()
    try:
        _first_audio_s(engine, "Hello.")
        _first_audio_s(local, "Hello.")
        remote_first, local_first = [], []
        for _ in range(5):
            first, chunks = _first_audio_s(engine, sentence)
            remote_first.append(first)
            local_first.append(_first_audio_s(local, sentence)[0])
    finally:
        local.close()
    audio = np.concatenate([resample(c.audio, c.sample_rate, 16_000) for c in chunks])
    heard = faster_whisper_stt.transcribe(audio).text
    print(f"\nwyoming-piper 2.5.2 (en_US-joe-medium) heard as {heard!r}; first audio: remote "
          f"{statistics.median(remote_first) * 1000:.0f} ms vs voiced's Piper "
          f"{statistics.median(local_first) * 1000:.0f} ms (median of 5)", file=sys.stderr)
    assert chunks[0].sample_rate == 22_050
    assert wer(sentence, heard) <= 0.15, heard


def test_a_voice_the_piper_server_lists_but_cannot_speak_is_refused_clearly(piper_peer, fast_whisper_settings,
                                                                             caplog):
    from voiced.engines.tts_wyoming import WyomingTTS
    from voiced.wyoming.client import RemoteError
    from voiced.wyoming.remote import RemoteWithFallback

    s = remote(fast_whisper_settings, tts={"engine": "wyoming", "wyoming_uri": piper_peer.uri,
                                           "wyoming_voice": "en_US-lessac-medium"})   # listed, not on disk
    with pytest.raises(RemoteError) as err:
        WyomingTTS(s).load()
    text = str(err.value)
    print("\n" + text, file=sys.stderr)
    assert "cannot speak voice 'en_US-lessac-medium'" in text and "VoiceNotFoundError" in text
    assert "wyoming_voice = \"\"" in text and len(text) < 400

    unknown = remote(s, tts={"wyoming_voice": "xx_XX-nobody-low"})
    with pytest.raises(RemoteError, match=r"has no voice 'xx_XX-nobody-low'.* and 1\d\d more") as err:
        WyomingTTS(unknown).load()
    assert len(str(err.value)) < 400, str(err.value)

    # In the daemon: one short log line, then the local voice answers.
    s = remote(s, wyoming={"fallback_local": False})
    engine = RemoteWithFallback("tts", WyomingTTS(s), None, s.wyoming)
    with caplog.at_level(logging.ERROR, logger="voiced.wyoming.remote"):
        engine.load()
    engine.close()
    lines = [r.getMessage() for r in caplog.records if "cannot speak voice" in r.getMessage()]
    assert len(lines) == 1 and len(lines[0]) < 600, lines


# ---------------------------------------------------------------- wake word

def _frames(audio: np.ndarray, size: int = 1280):
    return [audio[i:i + size] for i in range(0, len(audio) - size + 1, size)]


def test_remote_wake_word_on_wyoming_openwakeword_fires_once(oww_peer, fast_whisper_settings):
    from voiced.triggers.wake_wyoming import RemoteWakeDetector

    s = remote(fast_whisper_settings, wake={"engine": "wyoming", "wyoming_uri": oww_peer.uri, "models": ["hey_jarvis"]},
               wyoming={"fallback_local": False})
    detector = RemoteWakeDetector(s, None)
    try:
        end = time.monotonic() + 15
        while detector.health.state != "up" and time.monotonic() < end:
            time.sleep(0.05)
        assert detector.health.state == "up", detector.health.snapshot()
        found = []
        for _round in range(2):             # twice: the second utterance is heard too
            for frame in _frames(concat(silence(1.0), espeak("hey jarvis"), silence(3.0))):
                d = detector.process(frame)
                if d is not None:
                    found.append(d)
                time.sleep(0.02)            # ~4x faster than real time
        raw = detector.health.snapshot()["requests"]
    finally:
        detector.close()
    print(f"\nwyoming-openwakeword 1.8.2: {[(d.model, round(d.audio_time_s, 2)) for d in found]} from "
          f"{detector.received} detection events", file=sys.stderr)
    assert [d.model for d in found] == ["hey_jarvis", "hey_jarvis"], found
    assert found[1].audio_time_s - found[0].audio_time_s > 3, found
    assert raw["remote"] == 2


def test_doctor_checks_the_remote_wake_words_and_the_voice(oww_peer, piper_peer, voiced_server,
                                                           fast_whisper_settings):
    from voiced.doctor import _tts_check, model_checks, wyoming_checks
    from voiced.engines.factory import _tts_candidates
    from voiced.models import ModelStatus

    no_fallback = {"fallback_local": False}

    def checks(**sections):
        return {c.area: c for c in wyoming_checks(remote(fast_whisper_settings, **sections))}

    ok = checks(wake={"engine": "wyoming", "wyoming_uri": oww_peer.uri, "models": ["hey_jarvis"]})["remote wake"]
    assert ok.ok is True and "hey_jarvis_v0.1" in ok.what, ok
    missing = checks(wake={"engine": "wyoming", "wyoming_uri": oww_peer.uri, "models": ["hey_marvin"]})["remote wake"]
    assert missing.ok is False and "no wake word hey_marvin" in missing.what, missing
    alexa = checks(wake={"engine": "wyoming", "wyoming_uri": voiced_server.uri, "models": ["alexa"]})["remote wake"]
    assert alexa.ok is False and "hey_jarvis" in alexa.what, alexa
    voice = checks(tts={"engine": "wyoming", "wyoming_uri": piper_peer.uri, "wyoming_voice": "en_US-lessac-medium"})
    assert voice["remote tts"].ok is False and "cannot speak" in voice["remote tts"].what
    good = checks(tts={"engine": "wyoming", "wyoming_uri": piper_peer.uri, "wyoming_voice": "en_US-joe-medium"})
    assert good["remote tts"].ok and good["remote tts"].what.endswith("piper: en_US-joe-medium")

    # No fallback: "then: nothing", and no warning for a wake word only the remote has.
    s = remote(fast_whisper_settings, tts={"engine": "wyoming", "wyoming_uri": piper_peer.uri},
               wake={"engine": "wyoming", "wyoming_uri": oww_peer.uri, "models": ["ok_nabu"]}, wyoming=no_fallback)
    tts = _tts_check(s, _tts_candidates)
    assert "then: nothing" in tts.what and "piper" not in tts.what.split("then:")[1], tts
    rows = model_checks(s, [ModelStatus("wake", False, "ok_nabu", "openWakeWord", "ok_nabu_v0.1.onnx missing")])
    assert rows[0].ok is True and "not needed here" in rows[0].what, rows
    with_fallback = remote(s, wyoming={"fallback_local": True})
    assert "then: piper" in _tts_check(with_fallback, _tts_candidates).what
    assert model_checks(with_fallback, [ModelStatus("wake", False, "ok_nabu", "openWakeWord", "missing")])[0].ok is False


# ---------------------------------------------------------------- voiced's server, real clients

def test_wyoming_satellite_uses_voiceds_server(voiced_server, tmp_path):
    """wyoming-satellite 1.0.0 with voiced's server as its wake word service and files for
    microphone and speaker. The satellite has no ASR or TTS option of its own: Home Assistant
    runs its pipeline. This test plays Home Assistant, with voiced's server as ASR and TTS."""
    from wyoming.asr import Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.pipeline import RunPipeline
    from wyoming.satellite import RunSatellite

    question = "What time is it?"
    mic = concat(silence(1.0), espeak("hey jarvis"), silence(0.7), espeak(question), silence(6.0))
    raw = tmp_path / "mic.raw"
    raw.write_bytes(mic.tobytes())
    # The microphone: the file at about real time (the satellite reads as fast as it comes).
    feeder = tmp_path / "mic.py"
    feeder.write_text("import sys, time\nf = open(sys.argv[1], 'rb')\n"
                      "while (b := f.read(2048)):\n    sys.stdout.buffer.write(b); sys.stdout.buffer.flush(); "
                      "time.sleep(0.064)\ntime.sleep(60)\n")
    out = tmp_path / "speaker.raw"
    port = free_port()
    log = tmp_path / "satellite.log"
    sat = subprocess.Popen([str(peer_bin("satellite")), "-m", "wyoming_satellite", "--uri", f"tcp://127.0.0.1:{port}",
                            "--no-zeroconf", "--name", "voiced-test",
                            "--mic-command", f"{sys.executable} {shlex.quote(str(feeder))} {shlex.quote(str(raw))}",
                            "--snd-command", f"sh -c {shlex.quote('cat > ' + shlex.quote(str(out)))}",
                            "--snd-command-rate", "22050",
                            "--wake-uri", voiced_server.uri, "--wake-word-name", "hey_jarvis", "--debug"],
                           stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_port(port, sat, log)

        async def home_assistant():
            async with AsyncTcpClient("127.0.0.1", port) as sat_conn:
                await sat_conn.write_event(RunSatellite().event())
                audio, pipeline = bytearray(), None
                t0 = time.monotonic()
                while time.monotonic() - t0 < 40:
                    event = await asyncio.wait_for(sat_conn.read_event(), 40)
                    assert event is not None, "the satellite hung up"
                    if RunPipeline.is_type(event.type):
                        pipeline = RunPipeline.from_event(event)
                    elif AudioChunk.is_type(event.type) and pipeline is not None:
                        audio += AudioChunk.from_event(event).audio
                        if len(audio) >= 2 * 16_000 * 3:      # 3 s after the wake word
                            break
                speech = np.frombuffer(bytes(audio), np.int16)
                heard = Transcript.from_event(await transcribe(voiced_server.port, speech)).text
                reply, rate, _ = await synthesize(voiced_server.port, f"You asked: {heard}")
                await sat_conn.write_event(Transcript(text=heard).event())
                pcm = (np.clip(reply, -1, 1) * 32767).astype(np.int16).tobytes()
                await sat_conn.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                for i in range(0, len(pcm), 4096):
                    await sat_conn.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i:i + 4096]).event())
                await sat_conn.write_event(AudioStop().event())
                await asyncio.sleep(2.0)
                return pipeline, heard, len(reply) / rate

        pipeline, heard, reply_s = asyncio.run(home_assistant())
    finally:
        sat.terminate()
        sat.wait(10)
    played = out.stat().st_size / 2 / 22_050 if out.exists() else 0.0
    print(f"\nwyoming-satellite 1.0.0: pipeline {pipeline}; heard {heard!r}; reply {reply_s:.1f} s, "
          f"{played:.1f} s written by its --snd-command", file=sys.stderr)
    assert pipeline is not None and pipeline.start_stage.value == "asr", log.read_text()[-3000:]
    assert wer(question, heard) <= 0.25, heard
    assert played > 0.8 * reply_s, log.read_text()[-3000:]


def test_wyoming_bench_against_voiceds_server(voiced_server, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "jfk.wav", jfk_audio(), 16_000, subtype="PCM_16")
    (corpus / "jfk.txt").write_text(JFK_REFERENCE + "\n")
    bench = str(peer_bin("bench", "wyoming-bench"))
    server = f"127.0.0.1:{voiced_server.port}"
    outputs = []
    for argv in ([bench, "stt", "--corpus", str(corpus), "--rounds", "3", "--warmup", "1", server],
                 [bench, "tts", "--texts", "The weather is sunny and warm today.",
                  "Please set a timer for ten minutes, then remind me to call my sister.",
                  "--rounds", "3", "--warmup", "1", server]):
        run = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        outputs.append(run.stdout)
        print(f"\n$ wyoming-bench {' '.join(argv[1:])}\n{run.stdout}{run.stderr[-2000:]}", file=sys.stderr)
        assert run.returncode == 0, run.stderr[-3000:]
    assert "voiced-whisper" in outputs[0] and "voiced-tts" in outputs[1]


# ---------------------------------------------------------------- bad peers

def test_bad_clients_get_one_log_line_each_and_the_server_keeps_serving(voiced_server, caplog, monkeypatch):
    """Garbage, a client cut mid-stream, one that never reads its answer, a flood of events:
    one clear line each in the log, no traceback, and the next client is answered."""
    from wyoming.audio import AudioChunk, AudioStart
    from wyoming.info import Describe
    from wyoming.tts import Synthesize

    port = voiced_server.port

    def send(data: bytes, linger: float = 0.3, read: bool = False) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            time.sleep(linger)
            if read:
                s.settimeout(2)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass

    def frame(event) -> bytes:
        import json
        header = {"type": event.type, "data": event.data or {}}
        payload = event.payload or b""
        if payload:
            header["payload_length"] = len(payload)
        return (json.dumps(header) + "\n").encode() + payload

    with caplog.at_level(logging.INFO):
        send(b"\x00\xffnot json at all\n")                                     # garbage
        send(b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
             b'"payload_length": 9999}\n' + b"\x00" * 100)                     # cut mid-event
        send(frame(AudioStart(rate=16_000, width=2, channels=1).event()) +
             frame(AudioChunk(rate=16_000, width=2, channels=1, audio=b"\x00" * 3200).event()))  # cut mid-stream
        monkeypatch.setattr("voiced.wyoming.handler.WRITE_TIMEOUT_S", 2.0)
        with socket.socket() as stalled:      # asks for ~3 min of speech (8 MB) and never reads it
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connect: a small window
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(frame(Synthesize(text="This is a long answer that nobody will read. " * 22).event()) * 3)
            # meanwhile another client is answered (the stalled one must not hold the model queue)
            started = time.monotonic()
            served = asyncio.run(transcribe(port, jfk_audio()))
            waited = time.monotonic() - started
            time.sleep(5.0)                   # past WRITE_TIMEOUT_S: the server gives up on it
        send(frame(Describe().event()) * 2000, linger=1.0, read=True)           # flood
        time.sleep(0.5)
        answer = asyncio.run(transcribe(port, jfk_audio()))
    from wyoming.asr import Transcript
    assert wer(JFK_REFERENCE, Transcript.from_event(answer).text) < 0.15
    assert wer(JFK_REFERENCE, Transcript.from_event(served).text) < 0.15
    print(f"\na transcription beside a client that stopped reading: answered in {waited:.1f} s", file=sys.stderr)
    records = [r for r in caplog.records if r.name.startswith("voiced.wyoming") or r.name == "asyncio"]
    for r in records:
        print(f"{r.levelname} {r.name}: {r.getMessage()}", file=sys.stderr)
    assert not [r for r in caplog.records if r.exc_info], "a bad client produced a traceback"
    said = [r.getMessage() for r in records]
    for words_ in ("not a Wyoming event", "went away mid-stream", "stopped reading"):
        assert sum(words_ in line for line in said) == 1, (words_, said)
    assert "went away mid-event (IncompleteReadError)" in " ".join(said)
    end = time.monotonic() + 5
    while voiced_server.service.clients and time.monotonic() < end:
        time.sleep(0.05)
    assert voiced_server.service.clients == 0


# ---------------------------------------------------------------- Piper: one thread or two

def test_piper_worker_threads_benchmark(fast_whisper_settings):
    """voiced's Piper worker runs one ONNX thread by design (it holds up under load); this
    prints first audio and real-time factor with 1 and 2 threads on an idle machine."""
    from voiced.engines.tts_piper import PiperEngine

    text = "The weather is sunny and warm today, with a light breeze from the west in the afternoon."
    results = {}
    for threads in (1, 2):
        engine = PiperEngine(fast_whisper_settings.tts, threads=threads)
        engine.load()
        try:
            _first_audio_s(engine, "Hello.")
            firsts, rtfs = [], []
            for _ in range(7):
                t0 = time.monotonic()
                first, chunks = _first_audio_s(engine, text)
                total = time.monotonic() - t0
                firsts.append(first)
                rtfs.append(total / sum(len(c.audio) / c.sample_rate for c in chunks))
        finally:
            engine.close()
        results[threads] = (statistics.median(firsts), statistics.median(rtfs))
        print(f"\nvoiced Piper worker, {threads} thread(s): first audio {results[threads][0] * 1000:.0f} ms, "
              f"RTF {results[threads][1]:.3f} (median of 7, idle)", file=sys.stderr)
    assert all(rtf < 0.5 for _first, rtf in results.values())


# ---------------------------------------------------------------- the CLI without a fallback

@pytest.mark.parametrize("argv", [["say", "Hello there.", "--out", "{tmp}/x.wav"],
                                  ["transcribe", str(DATA / "jfk_16k.flac")]])
def test_cli_says_one_line_and_exits_69_when_the_remote_is_down_without_fallback(argv, tmp_path):
    uri = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "VOICED_STT__ENGINE": "wyoming", "VOICED_STT__WYOMING_URI": uri,
           "VOICED_TTS__ENGINE": "wyoming", "VOICED_TTS__WYOMING_URI": uri,
           "VOICED_WYOMING__FALLBACK_LOCAL": "false", "VOICED_WYOMING__CONNECT_TIMEOUT_S": "1"}
    run = subprocess.run([sys.executable, "-m", "voiced", *[a.replace("{tmp}", str(tmp_path)) for a in argv]],
                         capture_output=True, text=True, timeout=120, env=env)
    print(run.stderr, file=sys.stderr)
    assert run.returncode == 69, run.stderr
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"voiced: {argv[0]}: {uri}") and "fallback_local = false" in last, last
