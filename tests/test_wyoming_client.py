"""voiced as a Wyoming client: the remote STT/TTS engines against voiced's own server (real
Whisper, real Piper behind it), the fallback to the local model while the remote is down, the
reconnect with back-off once it is back, and the latency the network hop adds on loopback."""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import pytest
from fixtures_stt import JFK_REFERENCE, jfk_audio, wer
from support.wyoming_peer import free_port, start_server

from voiced.engines.base import TransientEngineError

pytestmark = pytest.mark.slow


def remote_settings(settings, port: int, **wyoming):
    uri = f"tcp://127.0.0.1:{port}"
    return settings.model_copy(update={
        "stt": settings.stt.model_copy(update={"engine": "wyoming", "wyoming_uri": uri}),
        "tts": settings.tts.model_copy(update={"engine": "wyoming", "wyoming_uri": uri}),
        "wyoming": settings.wyoming.model_copy(update={"reconnect_backoff_s": 0.2, "reconnect_backoff_max_s": 1.0,
                                                       "connect_timeout_s": 2.0, **wyoming})})


@pytest.fixture(scope="module")
def server(web_daemon):
    srv = start_server(web_daemon)
    yield srv
    srv.stop()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_remote_engines_speak_to_the_server(server, web_daemon, stt_settings):
    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.engines.tts_wyoming import WyomingTTS

    s = remote_settings(stt_settings, server.port)
    stt, tts = WyomingSTT(s), WyomingTTS(s)
    assert stt.load().device == "remote" and web_daemon.stt.info.model in stt.info.model
    assert tts.load().device == "remote" and tts.info.source == f"tcp://127.0.0.1:{server.port}"
    assert wer(JFK_REFERENCE, stt.transcribe(jfk_audio()).text) < 0.15
    chunks = list(tts.synthesize("Good morning. The kettle is on."))
    assert [c.text for c in chunks] == ["Good morning.", "The kettle is on."]   # one request per sentence
    assert all(c.sample_rate == tts.sample_rate and len(c.audio) / c.sample_rate > 0.3 for c in chunks)


def test_remote_speech_takes_the_replys_speed(server, stt_settings):
    """The remote speaks in its own voice; speed and pitch are applied here, as for every engine."""
    from voiced.engines.base import VoiceStyle
    from voiced.engines.tts_wyoming import WyomingTTS

    tts = WyomingTTS(remote_settings(stt_settings, server.port))
    text = "The kettle is on and the tea will be ready in five minutes."
    seconds = lambda chunks: sum(len(c.audio) / c.sample_rate for c in chunks)   # noqa: E731
    plain = statistics.median(seconds(list(tts.synthesize(text))) for _ in range(3))
    faster = seconds(list(tts.synthesize(text, VoiceStyle(speed=1.5))))
    print(f"remote speech at speed 1.5: {plain / faster:.2f}x shorter", file=sys.stderr)
    assert plain / faster == pytest.approx(1.5, rel=0.15)   # Piper's own durations vary a few %


def test_network_hop_latency_on_loopback(server, web_daemon, stt_settings):
    """The same audio and text through the local engines and through the server; prints the difference."""
    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.engines.tts_wyoming import WyomingTTS

    s = remote_settings(stt_settings, server.port)
    stt, tts = WyomingSTT(s), WyomingTTS(s)
    audio, text = jfk_audio(), "The kettle is on."
    prepared, _ = web_daemon.prepare_request(audio)   # the server applies the daemon's input path too

    def best_times(local, remote, n=5) -> tuple[float, float]:
        """Fastest of n, local and remote interleaved: the machine is shared, noise only adds."""
        times: dict[str, list[float]] = {"local": [], "remote": []}
        for _ in range(n):
            for name, fn in (("local", local), ("remote", remote)):
                t0 = time.monotonic()
                fn()
                times[name].append(time.monotonic() - t0)
        return min(times["local"]), min(times["remote"])

    local_stt, remote_stt = best_times(lambda: web_daemon.stt.transcribe(prepared), lambda: stt.transcribe(audio))
    local_tts, remote_tts = best_times(lambda: list(web_daemon.tts.synthesize(text)),
                                       lambda: list(tts.synthesize(text)))
    round_trips = []
    for _ in range(20):
        t0 = time.monotonic()
        stt.remote.describe()                  # connect, describe, info, close: the bare hop
        round_trips.append(time.monotonic() - t0)
    print(f"network hop on loopback: connect+describe {statistics.median(round_trips) * 1000:.1f} ms; "
          f"STT (11 s of speech) local {local_stt:.3f} s, via Wyoming {remote_stt:.3f} s "
          f"(+{remote_stt - local_stt:.3f} s); TTS ({text!r}) local {local_tts:.3f} s, via Wyoming "
          f"{remote_tts:.3f} s (+{remote_tts - local_tts:.3f} s)", file=sys.stderr)
    assert remote_stt - local_stt < 1.5 and remote_tts - local_tts < 1.0   # generous: a noisy shared machine


def test_falls_back_while_the_remote_is_down_and_returns_when_it_is_back(web_daemon, stt_settings):
    from voiced.config import WyomingSettings
    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.wyoming.remote import RemoteWithFallback
    from voiced.wyoming.server import WyomingServer, WyomingService

    port = free_port()                       # nothing listens here yet
    s = remote_settings(stt_settings, port)
    engine = RemoteWithFallback("stt", WyomingSTT(s), lambda: (web_daemon.stt, web_daemon.stt.info), s.wyoming)
    engine.load()
    try:
        assert engine.health.state == "down" and engine.info.name == web_daemon.stt.info.name  # the local one answers
        assert wer(JFK_REFERENCE, engine.transcribe(jfk_audio()).text) < 0.15
        assert engine.remote_health["requests"]["local"] == 1 and "Connect call failed" in engine.health.last_error

        srv = WyomingServer(WyomingService.for_daemon(web_daemon, WyomingSettings(enabled=True)),
                            "127.0.0.1", port).start()
        try:
            assert wait_for(lambda: engine.health.state == "up"), "the probe did not reconnect"
            assert engine.info.device == "remote"
            assert wer(JFK_REFERENCE, engine.transcribe(jfk_audio()).text) < 0.15
            assert engine.remote_health["requests"]["remote"] == 1 and srv.service.counts["transcripts"] == 1
        finally:
            srv.stop()
        assert wer(JFK_REFERENCE, engine.transcribe(jfk_audio()).text) < 0.15   # server gone: local again
        health = engine.remote_health
        assert health["state"] == "down" and health["requests"]["local"] == 2 and health["failures"] >= 2
    finally:
        engine.close()


def test_without_fallback_a_down_remote_is_a_transient_error_naming_it(stt_settings):
    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.wyoming.remote import RemoteWithFallback

    port = free_port()
    s = remote_settings(stt_settings, port, fallback_local=False)
    engine = RemoteWithFallback("stt", WyomingSTT(s), None, s.wyoming)
    engine.load()
    try:
        with pytest.raises(TransientEngineError, match=f"tcp://127.0.0.1:{port}"):
            engine.transcribe(jfk_audio())
        assert engine.remote_health["fallback"] is None and engine.health.failures >= 1
    finally:
        engine.close()


def test_speech_cut_mid_reply_is_finished_by_the_local_voice_without_repeating(web_daemon, stt_settings):
    """The server stops after the first sentence: the local engine says only the rest."""
    from voiced.engines.tts_wyoming import WyomingTTS
    from voiced.wyoming.remote import RemoteWithFallback

    srv = start_server(web_daemon)
    s = remote_settings(stt_settings, srv.port)
    engine = RemoteWithFallback("tts", WyomingTTS(s), lambda: (web_daemon.tts, web_daemon.tts.info), s.wyoming)
    engine.load()
    try:
        said = []
        for chunk in engine.synthesize("It is sunny. Take a hat. Drink some water."):
            said.append(chunk.text)
            if len(said) == 1:
                srv.stop()                   # the remote goes away mid-reply
        assert said[0] == "It is sunny." and " ".join(said[1:]) == "Take a hat. Drink some water.", said
        assert engine.remote_health["requests"] == {"remote": 0, "local": 1, "busy": 0}
    finally:
        srv.stop()
        engine.close()


def test_remote_engine_without_a_tcp_uri_is_a_config_error_naming_the_key(tmp_path):
    from voiced.config import ConfigError, load_settings

    cfg = tmp_path / "voiced.toml"
    cfg.write_text('[tts]\nengine = "wyoming"\nwyoming_uri = "gpu-box:10300"\n')
    with pytest.raises(ConfigError, match=r"tts.*wyoming_uri = \"tcp://HOST:PORT\".*gpu-box:10300"):
        load_settings(cfg)
    cfg.write_text('[stt]\nengine = "wyoming"\nwyoming_uri = "tcp://gpu-box:10300"\n[wyoming]\nport = 0\n')
    with pytest.raises(ConfigError, match=r"wyoming.port"):
        load_settings(cfg)


def feed(detector, audio, pace_s: float = 0.01) -> list:
    """Frames of 80 ms into the detector as the listen loop gives them; then silence until
    a detection comes back (a remote one arrives a frame or two later)."""
    from fixtures_audio import silence

    found = []
    stream = np.concatenate([audio, silence(3.0)])
    for start in range(0, len(stream) - 1279, 1280):
        d = detector.process(stream[start:start + 1280])
        if d is not None:
            found.append(d)
            break
        time.sleep(pace_s)
    return found


def test_remote_wake_word_over_a_stream_with_local_fallback(web_daemon, stt_settings):
    from fixtures_audio import concat, espeak, silence

    from voiced.config import WyomingSettings
    from voiced.triggers.wake_wyoming import make_wake_detector
    from voiced.wyoming.server import WyomingServer, WyomingService

    port = free_port()
    s = remote_settings(stt_settings, port)
    s = s.model_copy(update={"wake": s.wake.model_copy(update={"engine": "wyoming",
                                                               "wyoming_uri": f"tcp://127.0.0.1:{port}"})})
    speech = concat(silence(0.5), espeak("hey jarvis"), silence(0.5))
    srv = WyomingServer(WyomingService.for_daemon(web_daemon, WyomingSettings(enabled=True)), "127.0.0.1", port).start()
    detector = make_wake_detector(s)
    try:
        assert wait_for(lambda: detector.health.state == "up")
        found = feed(detector, speech)
        assert [d.model for d in found] == ["hey_jarvis"] and detector.remote_health["state"] == "up"
        assert found[0].score == 1.0            # the remote's (a Detection carries no score)
        assert not feed(detector, concat(silence(0.5), espeak("what is the weather like"), silence(0.5)))

        srv.stop()                              # the remote goes away: the local model listens
        assert wait_for(lambda: detector.health.state == "down")
        detector.reset()
        found = feed(detector, speech, pace_s=0)
        assert [d.model for d in found] == ["hey_jarvis"] and found[0].score < 1.0   # a local score
    finally:
        detector.close()
        srv.stop()


def test_a_remote_that_accepts_but_never_answers_times_out_to_the_local_model(web_daemon, stt_settings):
    """A hung remote (the connection is accepted, nothing ever comes back): after read_timeout_s
    the local model answers, and the remote is marked down."""
    import socket

    from voiced.engines.stt_wyoming import WyomingSTT
    from voiced.wyoming.remote import RemoteWithFallback

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)                     # the kernel accepts; nobody ever reads or answers
        s = remote_settings(stt_settings, silent.getsockname()[1], read_timeout_s=1.0)
        engine = RemoteWithFallback("stt", WyomingSTT(s), lambda: (web_daemon.stt, web_daemon.stt.info), s.wyoming)
        engine.load()                        # its describe times out too
        try:
            assert engine.health.state == "down" and "TimeoutError" in engine.health.last_error
            engine.health.retry_at = 0       # try the remote again now instead of after the back-off
            t0 = time.monotonic()
            assert wer(JFK_REFERENCE, engine.transcribe(jfk_audio()).text) < 0.15
            took = time.monotonic() - t0
            assert engine.remote_health["requests"]["local"] == 1 and engine.health.failures >= 2
            print(f"hung remote: answered locally after {took:.2f} s (read_timeout_s = 1)", file=sys.stderr)
            assert took < 10
        finally:
            engine.close()


def test_doctor_checks_each_remote_service(server, stt_settings):
    from voiced.doctor import wyoming_checks

    up = remote_settings(stt_settings, server.port)
    checks = {c.area: c for c in wyoming_checks(up)}
    assert checks["remote stt"].ok and "voiced-whisper" in checks["remote stt"].what
    assert checks["remote tts"].ok and "voiced-tts" in checks["remote tts"].what
    down = {c.area: c for c in wyoming_checks(remote_settings(stt_settings, free_port()))}
    assert down["remote stt"].ok is False and "Connect call failed" in down["remote stt"].what
    assert "local models answer meanwhile" in down["remote stt"].fix
    assert wyoming_checks(stt_settings) == []     # no remote engine configured: nothing to check
