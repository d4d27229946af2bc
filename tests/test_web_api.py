"""The HTTP API against the real daemon (real Whisper and Piper) through the real uvicorn
server: every endpoint, real uploads, bad inputs, busy answers, the event stream, the CLI client."""
from __future__ import annotations

import io
import json
import re
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.fixtures_stt import words
from tests.fixtures_web import ARTIFACTS, free_port

pytest_plugins = ["tests.fixtures_web"]
JFK_WORDS = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


def upload(http, data: bytes, mime: str = "audio/webm;codecs=opus", field: str = "audio", name: str = "rec.webm"):
    return http.post("/api/utterance", files={field: (name, data, mime)})


def assert_still_serving(http, daemon):
    from voiced.pipeline import PipelineState as S

    assert http.get("/healthz").status_code == 200
    assert http.get("/api/status").json()["state"] == "idle"
    assert daemon.pipeline.state == S.IDLE


def test_page_and_its_files(http):
    page = http.get("/")
    assert page.status_code == 200 and 'class="mic-button"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "#ff9800" in http.get("/style.css").text
    assert "isRecording" in http.get("/script.js").text
    assert http.get("/favicon.svg").headers["content-type"].startswith("image/svg+xml")


def test_healthz_tells_the_watchdogs_truth(http, daemon, monkeypatch):
    """No microphone: alive (degraded, the reason says so) and ready. A core stuck on a
    frame (a wake detector that hangs: a fault we cannot cause for real) is not alive, and
    /healthz and the watchdog say why; when it gets going again, both recover."""
    import numpy as np

    from voiced.core.messages import MicFrame

    ok = http.get("/healthz")
    assert ok.status_code == 200 and ok.json()["alive"] is True
    assert ok.json()["reason"] == "no microphone in use", ok.json()
    assert http.get("/readyz").json() == {"ready": True, "reason": "idle", "state": "idle"}
    release = threading.Event()

    def hung_process(frame):
        release.wait(30)
        return None
    monkeypatch.setattr(daemon.wake, "process", hung_process)
    monkeypatch.setattr(daemon, "settings", daemon.settings.model_copy(update={
        "watchdog": daemon.settings.watchdog.model_copy(update={"loop_deadline_s": 1.0})}))
    daemon.owner.post(MicFrame(np.zeros(1280, np.int16), time.monotonic()))
    try:
        time.sleep(1.6)
        down = http.get("/healthz")
        assert down.status_code == 503, down.json()
        assert "core loop stuck: no step for" in down.json()["error"] and down.json()["alive"] is False
        assert daemon.alive()[0] is False
    finally:
        release.set()
    end = time.monotonic() + 5
    while http.get("/healthz").status_code != 200 and time.monotonic() < end:
        time.sleep(0.05)
    assert http.get("/healthz").status_code == 200


def test_readyz_is_503_while_busy_and_says_why(http, daemon):
    assert http.post("/api/trigger").status_code == 202
    busy = http.get("/readyz")
    assert busy.status_code == 503 and busy.json()["reason"] == "busy: listening", busy.json()
    assert http.get("/healthz").status_code == 200   # busy is alive


def test_status_describes_engines_devices_and_turns(http):
    st = http.get("/api/status").json()
    assert st["state"] == "idle" and st["alive"] is True
    assert st["engines"]["stt"]["name"] == "faster-whisper" and st["engines"]["tts"]["name"] in ("piper", "chatterbox")
    assert "stt.engine auto chose faster-whisper: its weights are prepared" in st["engines"]["stt"]["notes"]
    assert st["wake_words"] == ["hey_jarvis"]
    for key in ("input", "output", "gpu", "counts", "latency", "turns", "uptime_s"):
        assert key in st


def test_real_webm_upload_is_transcribed_answered_and_spoken(http, recordings, daemon):
    data = recordings["webm"].read_bytes()
    t0 = time.monotonic()
    response = upload(http, data)
    round_trip = time.monotonic() - t0
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"transcript", "reply", "audio_url", "timings"}
    assert "fellow americans" in words(body["transcript"]) and "for your country" in words(body["transcript"])
    assert body["reply"].startswith("You said:") and body["outcome"] == "answered"
    wav = http.get(body["audio_url"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    info = sf.info(io.BytesIO(wav.content))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (24_000, 1, "PCM_16", "WAV")
    audio, _ = sf.read(io.BytesIO(wav.content), dtype="float32")
    assert info.duration > 2.0 and np.sqrt(np.mean(audio ** 2)) > 0.01   # speech, not silence
    turn = http.get("/api/status").json()["turns"][-1]
    assert turn["id"] == body["turn"] and turn["trigger"] == "browser"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "web-upload-measurements.json").write_text(json.dumps({
        "upload": "jfk 11 s webm/opus 32 kb/s", "upload_bytes": len(data), "round_trip_s": round(round_trip, 3),
        "response_json_bytes": len(response.content), "reply_wav_bytes": len(wav.content),
        "reply_seconds": round(info.duration, 2), "timings": body["timings"]}, indent=2))


def test_wav_upload_at_48k_is_resampled(http, recordings):
    response = upload(http, recordings["wav"].read_bytes(), "audio/wav", name="rec.wav")
    assert response.status_code == 200, response.text
    assert "ask not what your country" in words(response.json()["transcript"])


def test_truncated_webm_answers_what_it_holds(http, recordings, daemon):
    data = recordings["webm"].read_bytes()
    response = upload(http, data[: len(data) // 2])   # a recording cut off half way
    assert response.status_code == 200, response.text
    heard = words(response.json()["transcript"])
    assert "fellow americans" in heard and "do for your country" not in heard
    assert_still_serving(http, daemon)


def _multipart(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for name, data in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\n"
                f"Content-Type: audio/webm\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


BAD_UPLOADS = {
    # name: (headers, body or callable(recordings) -> body, expected status, words in the error)
    "empty body": ({}, b"", 415, "multipart/form-data"),
    "json instead of a form": ({"content-type": "application/json"}, b'{"audio": "x"}', 415, "multipart"),
    "form without parts": ({"content-type": "multipart/form-data; boundary=b1"}, _multipart("b1", []), 422, "no field"),
    "wrong field name": ({"content-type": "multipart/form-data; boundary=b1"},
                         lambda r: _multipart("b1", [("file", r["webm"].read_bytes())]), 422, "'file'"),
    "empty audio field": ({"content-type": "multipart/form-data; boundary=b1"}, _multipart("b1", [("audio", b"")]),
                          400, "empty"),
    "no boundary": ({"content-type": "multipart/form-data"}, b"--x\r\n", 400, "boundary"),
    "garbage with an audio type": ({"content-type": "multipart/form-data; boundary=b1"},
                                   _multipart("b1", [("audio", bytes(range(256)) * 40)]), 415, "could not read"),
    "truncated webm header": ({"content-type": "multipart/form-data; boundary=b1"},
                              lambda r: _multipart("b1", [("audio", r["webm"].read_bytes()[:200])]), 415, "could not read"),
    "text with an audio type": ({"content-type": "multipart/form-data; boundary=b1"},
                                _multipart("b1", [("audio", b"hello, this is not audio at all\n" * 50)]), 415, "audio"),
    "too long (44 s)": ({"content-type": "multipart/form-data; boundary=b1"},
                        lambda r: _multipart("b1", [("audio", r["long_webm"].read_bytes())]), 413, "longer than 30"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_refused_clearly_and_the_daemon_keeps_serving(http, daemon, recordings, case):
    headers, body, status, wording = BAD_UPLOADS[case]
    body = body(recordings) if callable(body) else body
    response = http.post("/api/utterance", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert wording in response.json()["error"]
    assert_still_serving(http, daemon)


def test_upload_over_the_size_cap_is_413(http, daemon):
    big = np.random.default_rng(0).bytes(10_200_000)
    declared = upload(http, big)
    assert declared.status_code == 413 and "max_upload_bytes" in declared.json()["error"]

    def chunked():   # no Content-Length: the server must count as it reads
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]
    streamed = http.post("/api/utterance", content=chunked(),
                         headers={"content-type": "multipart/form-data; boundary=b1"})
    assert streamed.status_code == 413 and "max_upload_bytes" in streamed.json()["error"]
    assert_still_serving(http, daemon)


def test_second_upload_while_one_runs_gets_409(http, web_server, recordings, daemon):
    from voiced.pipeline import PipelineState as S

    data = recordings["webm"].read_bytes()
    first: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: first.append(upload(httpx.Client(base_url=web_server.url, timeout=120), data)))
    worker.start()
    end = time.monotonic() + 30
    while daemon.pipeline.state == S.IDLE and time.monotonic() < end:
        time.sleep(0.01)
    second = upload(http, data)
    say = http.post("/api/say", json={"text": "hello"})
    worker.join(120)
    assert second.status_code == 409 and "busy" in second.json()["error"]
    assert say.status_code == 409
    assert first[0].status_code == 200, first[0].text


def test_trigger_starts_listening_then_busy(http, daemon):
    from voiced.pipeline import PipelineState as S

    first = http.post("/api/trigger")
    assert first.status_code == 202 and first.json()["state"] == "listening"
    assert daemon.pipeline.state == S.LISTENING and daemon.pipeline.current.trigger == "api"
    assert http.post("/api/trigger").status_code == 409
    assert http.post("/api/utterance", files={"audio": ("a", b"x", "audio/webm")}).status_code == 409
    assert http.post("/api/say", json={"text": "hi"}).status_code == 409


@pytest.mark.parametrize("payload, status", [
    ({"text": "Hello from the test."}, 202), ({"text": ""}, 422), ({"text": "   "}, 422), ({}, 422),
    ({"text": 42}, 422), ({"text": "x" * 1001}, 422), ("not json", 422),
])
def test_say_validates_text(http, daemon, payload, status):
    response = (http.post("/api/say", content=payload, headers={"content-type": "application/json"})
                if isinstance(payload, str) else http.post("/api/say", json=payload))
    assert response.status_code == status, response.text
    if status != 202:
        assert response.json()["error"]


def test_reply_audio_unknown_and_malformed_keys(http):
    assert http.get("/api/replies/999999-deadbeef.wav").status_code == 404
    bad = http.get("/api/replies/..%2Fetc.wav")
    assert bad.status_code in (404, 422) and "error" in bad.json()


METRIC_LINE = re.compile(r'^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                         r'(-?[0-9.]+(e[+-]?\d+)?|\+Inf))$')


def scrape(http) -> dict:
    """/metrics through prometheus_client's own text parser: {name: family}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}


def sample(families: dict, family: str, name: str | None = None, **labels) -> float:
    (value,) = [s.value for s in families[family].samples
                if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items())]
    return value


def test_metrics_are_prometheus_text_with_histograms(http, recordings):
    assert upload(http, recordings["webm"].read_bytes()).status_code == 200
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.strip().splitlines()
    assert all(METRIC_LINE.match(line) for line in lines), [line for line in lines if not METRIC_LINE.match(line)]
    families = scrape(http)   # parses, or raises
    assert sample(families, "voiced_turns", "voiced_turns_total") >= 1 and sample(families, "voiced_up") == 1
    hist = families["voiced_stage_latency_seconds"]
    assert hist.type == "histogram"
    buckets = [(float(s.labels["le"]), s.value) for s in hist.samples
               if s.name.endswith("_bucket") and s.labels["stage"] == "stt"]
    assert [le for le, _ in buckets] == sorted(le for le, _ in buckets) and buckets[-1][0] == float("inf")
    counts = [n for _, n in buckets]
    assert counts == sorted(counts) and counts[-1] == sample(families, "voiced_stage_latency_seconds",
                                                             "voiced_stage_latency_seconds_count", stage="stt") >= 1
    # Every name and label voiced exposed before prometheus_client, with its type.
    kinds = {"voiced_up": "gauge", "voiced_uptime_seconds": "gauge", "voiced_state": "gauge",
             "voiced_turns": "counter", "voiced_turn_outcomes": "counter", "voiced_errors": "counter",
             "voiced_recoveries": "counter", "voiced_speculations": "counter", "voiced_end_of_turn": "counter",
             "voiced_input_reopens": "counter", "voiced_input_ok": "gauge", "voiced_output_ok": "gauge",
             "voiced_sse_clients": "gauge", "voiced_stage_latency_seconds": "histogram"}
    assert {name: families[name].type for name in kinds} == kinds
    assert sum(s.value for s in families["voiced_state"].samples) == 1
    assert {s.labels["state"] for s in families["voiced_state"].samples} >= {"idle", "listening", "speaking"}
    assert {s.labels["result"] for s in families["voiced_speculations"].samples} == {"started", "used", "discarded"}
    assert {s.labels["by"] for s in families["voiced_end_of_turn"].samples} == {"model", "silence"}
    assert all("outcome" in s.labels for s in families["voiced_turn_outcomes"].samples)
    # prometheus_client's own collectors
    assert sample(families, "process_resident_memory_bytes") > 0 and "python_info" in families
    assert sample(families, "process_cpu_seconds", "process_cpu_seconds_total") > 0


def test_docs_work_offline_and_the_schema_lists_every_endpoint(http):
    docs = http.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs) + re.findall(r"url: '([^']+)'", docs)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert http.get(asset).status_code == 200, asset
    paths = http.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/api/status", "/api/events", "/api/trigger", "/api/utterance", "/api/say", "/metrics"):
        assert path in paths


def test_events_stream_a_state_change_on_trigger_and_unsubscribe_on_disconnect(web_server, daemon):
    def subscribers():
        return len(daemon.events._subscribers)

    before = subscribers()
    seen: list[dict] = []
    with httpx.Client(base_url=web_server.url, timeout=10) as client:
        with client.stream("GET", "/api/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    break
            assert seen[0]["type"] == "hello" and subscribers() == before + 1
            assert client.post("/api/trigger").status_code == 202
            for line in lines:
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    if seen[-1]["type"] == "state":
                        break
    assert seen[-1]["state"] == "listening" and seen[-1]["previous"] == "idle"
    end = time.monotonic() + 5
    while subscribers() != before and time.monotonic() < end:
        time.sleep(0.05)
    assert subscribers() == before, "the closed stream's subscription leaked"
    assert re.search(r"^voiced_sse_clients 0(\.0)?$", httpx.get(web_server.url + "metrics").text, re.M)


def test_cli_client_prints_status_and_triggers(web_server, daemon, capsys):
    from voiced.web.client import print_status, trigger

    assert print_status(web_server.url) == 0
    out = capsys.readouterr().out
    assert "idle" in out and "whisper" in out
    assert trigger(web_server.url) == 0
    assert trigger(web_server.url) == 1
    assert "busy" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}/"
    assert print_status(dead) == 1 and trigger(dead) == 1
    assert "not running" in capsys.readouterr().err


def test_metrics_and_status_show_vram_when_a_gpu_is_there(http, daemon, monkeypatch):
    # This machine has no GPU: give daemon.status() the reading GpuManager.vram() makes on one.
    reading = {"name": "NVIDIA H100", "usable": True, "detail": "", "fault": None, "fraction": 0.8,
               "requested_fraction": 0.8, "total_mb": 81559, "used_mb": 5120, "limit_mb": 65247,
               "allocated_mb": 4000, "reserved_mb": 4200}
    monkeypatch.setattr(daemon.gpu, "vram", lambda: reading)
    families = scrape(http)
    assert sample(families, "voiced_gpu_vram_used_bytes") == 5120 * 2**20
    assert sample(families, "voiced_gpu_vram_total_bytes") == 81559 * 2**20
    assert sample(families, "voiced_gpu_vram_limit_bytes") == 65247 * 2**20
    assert sample(families, "voiced_gpu_vram_allocated_bytes") == 4000 * 2**20
    assert http.get("/api/status").json()["gpu"] == reading
