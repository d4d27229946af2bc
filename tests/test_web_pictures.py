"""The status page's pictures in a real browser (Chromium via Playwright) against the real
daemon: the "how am I doing" header, the latency chart (one stacked bar per turn, median and
p95 lines), the live microphone level and wake word scores (GET /api/meter), and what the
meter costs: nothing while no page is open (the daemon's own CPU time, measured)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.fixtures_audio import espeak, silence
from tests.fixtures_stt import jfk_audio
from tests.fixtures_web import ARTIFACTS, free_port, wait_state
from tests.test_web_browser import browser, page, wait_for  # noqa: F401 - the browser fixtures, shared

pytest_plugins = ["tests.fixtures_web"]
FRAME = 1280   # 80 ms at 16 kHz
SCREENSHOTS = Path(__file__).parents[1] / "docs" / "screenshots"


def shoot(page, name: str, **kwargs) -> Path:
    """A screenshot into test-artifacts/; with VOICED_UPDATE_SCREENSHOTS=1 also a copy into
    docs/screenshots/ (the README's), so an ordinary run leaves the tree clean."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), **kwargs)
    if os.environ.get("VOICED_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        keep_small(path, SCREENSHOTS / name)
    return path


def keep_small(source: Path, dest: Path) -> None:
    """The docs' copy with a 256-colour palette (a third of the size), else as it is."""
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(source, dest)
        return
    with Image.open(source) as image:
        image.convert("RGB").quantize(256).save(dest, optimize=True)


def pcm16(audio: np.ndarray) -> np.ndarray:
    if audio.dtype == np.int16:
        return audio
    return np.clip(audio * 32767, -32768, 32767).astype(np.int16)


def feed_real_time(daemon, audio: np.ndarray, stop: threading.Event | None = None) -> None:
    """Frames into the owner as the capture would post them: one per 80 ms."""
    pcm = pcm16(audio)
    t0 = time.monotonic()
    for n, i in enumerate(range(0, len(pcm) - FRAME + 1, FRAME)):
        if stop is not None and stop.is_set():
            return
        daemon.owner.post_frame(pcm[i:i + FRAME])
        time.sleep(max(0.0, t0 + (n + 1) * 0.08 - time.monotonic()))


def upload(base_url: str, path: Path) -> dict:
    with open(path, "rb") as f:
        r = httpx.post(base_url + "api/utterance", files={"audio": ("jfk.webm", f, "audio/webm")}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def timed_turns(daemon_status: dict) -> list[dict]:
    stages = ("record", "stt", "respond", "tts_first_audio")
    return [t for t in daemon_status["turns"] if any(t["timings"].get(s, 0) > 0 for s in stages)][-20:]


# -- the header -------------------------------------------------------------------------
def test_header_says_degraded_without_a_microphone(page, web_server, daemon):
    page.goto(web_server.url)
    wait_for(page, "document.getElementById('summary').dataset.level === 'degraded'", 10)
    headline = page.text_content("#summary-headline")
    print("header:", headline)
    assert headline.startswith("Degraded: no microphone (")
    assert daemon.snapshot().mic.detail in headline   # the daemon's own reason, in its words
    assert headline.endswith("; answering uploads and the API")
    details = page.text_content("#summary-details")
    stt, tts = daemon.stt.info, daemon.tts.info
    assert f"Speech to text: {stt.name} on {stt.device}" in details
    assert f"Voice: {tts.name} on {tts.device}" in details
    assert "Ready for a request" in details
    assert colour(page, "#summary", "borderLeftColor") == "rgb(239, 108, 0)"
    shoot(page, "status-header-degraded.png", clip={"x": 0, "y": 0, "width": 1200, "height": 170})
    assert not page.foreign and not page.problems, (page.foreign, page.problems)


def test_header_words_for_other_states(page, web_server):
    """summarize() on made-up statuses: all good, an engine on its fallback, not alive."""
    page.goto(web_server.url)
    wait_for(page, "document.getElementById('summary').dataset.level !== 'unknown'", 10)
    status = httpx.get(web_server.url + "api/status").json()
    # All devices up, whatever earlier tests did to the shared daemon's speaker.
    good = {**status, "input": {**status["input"], "ok": True, "detail": "capturing"},
            "output": {**status["output"], "ok": True, "detail": "playing"}}
    verdict = page.evaluate("st => summarize(st)", good)
    assert verdict == {"level": "ok", "headline": "All good: listening for hey jarvis"}, verdict
    stt = good["engines"]["stt"]
    fallback = {**good, "engines": {**good["engines"], "stt": {**stt, "recovery": {
        **stt["recovery"], "degraded": True, "device": "cpu", "preferred": "cuda", "reason": "CUDA out of memory"}}}}
    verdict = page.evaluate("st => summarize(st)", fallback)
    assert verdict["level"] == "degraded"
    assert verdict["headline"] == ("Degraded: speech to text runs on cpu instead of cuda (CUDA out of memory); "
                                   "listening for hey jarvis"), verdict
    dead = {**good, "alive": False, "alive_reason": "stage stt stuck for 31 s"}
    assert page.evaluate("st => summarize(st)", dead) == {"level": "bad",
                                                           "headline": "Not working: stage stt stuck for 31 s"}


def colour(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"el => getComputedStyle(el)['{prop}']")


# -- the latency chart ------------------------------------------------------------------
def test_latency_chart_has_a_bar_per_turn_and_updates_live(page, web_server, daemon, recordings):
    upload(web_server.url, recordings["webm"])   # at least one timed turn before the page opens
    page.goto(web_server.url)
    status = httpx.get(web_server.url + "api/status").json()
    before = timed_turns(status)
    wait_for(page, f"document.querySelectorAll('#latency-chart g.bar').length === {len(before)}", 10)
    shown = page.eval_on_selector_all("#latency-chart g.bar", "gs => gs.map(g => Number(g.dataset.turn))")
    assert shown == [t["id"] for t in before]

    # A spoken turn (frames through the capture's sink after a trigger): record, STT, respond
    # and first audio all present, and the page adds its bar without a reload.
    assert httpx.post(web_server.url + "api/trigger").status_code == 202
    wait_state(daemon, "listening")
    feed_real_time(daemon, np.concatenate([jfk_audio()[:16_000 * 5], silence(2.0).astype(np.float32)]))
    wait_state(daemon, "idle", timeout=60)
    spoken = upload(web_server.url, recordings["webm"])   # and one more upload
    after = timed_turns(httpx.get(web_server.url + "api/status").json())
    # Two new timed turns (the status keeps the last 20 turns, so older ones may have left).
    assert len({t["id"] for t in after} - {t["id"] for t in before}) >= 2, (before, after)
    wait_for(page, f"document.querySelector('#latency-chart g.bar[data-turn=\"{spoken['turn']}\"]') !== null", 10)
    shown = page.eval_on_selector_all("#latency-chart g.bar", "gs => gs.map(g => Number(g.dataset.turn))")
    assert shown == [t["id"] for t in after]
    segments = page.eval_on_selector_all(
        "#latency-chart g.bar", "gs => gs.map(g => [...g.querySelectorAll('rect')].map(r => r.classList[1]))")
    names = {"record": "record", "stt": "stt", "respond": "respond", "tts_first_audio": "first_audio"}
    for turn, drawn in zip(after, segments):   # each stage that took time is a segment, bottom up
        wanted = [names[k] for k in ("stt", "respond", "tts_first_audio", "record") if turn["timings"].get(k, 0) > 0]
        assert drawn == wanted, (turn, drawn)
    spoken_turn = next(t for t in after if t["trigger"] == "api")
    assert {"record", "stt"} <= spoken_turn["timings"].keys(), spoken_turn   # no speaker here: no first audio
    latency = httpx.get(web_server.url + "api/status").json()["latency"]
    if "voice_to_voice" in latency:
        wait_for(page, "document.querySelectorAll('#latency-chart line.mark').length === 2", 10)
        label = page.text_content("#latency-chart .mark-label.p95")
        assert label == f"p95 {latency['voice_to_voice']['p95_s']:.2f} s", label
    chart = page.locator(".latency-chart")
    chart.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    chart.screenshot(path=str(ARTIFACTS / "status-latency-chart.png"))
    if os.environ.get("VOICED_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        keep_small(ARTIFACTS / "status-latency-chart.png", SCREENSHOTS / "status-latency-chart.png")
    assert not page.foreign and not page.problems, (page.foreign, page.problems)


# -- the live meter ----------------------------------------------------------------------
def test_meter_moves_with_audio_and_shows_wake_scores(page, web_server, daemon):
    assert daemon.meter.wanted == 0
    page.goto(web_server.url)
    wait_for(page, "meterPeak.readings >= 2", 10)
    assert daemon.meter.wanted == 1
    assert "no microphone" in page.text_content("#level-text")   # no frames: it says why
    assert page.evaluate("meterPeak.db") is None

    stop = threading.Event()
    speech = np.concatenate([pcm16(jfk_audio()[:16_000 * 4]), silence(0.5), espeak("hey jarvis"), silence(1.0)])
    feeder = threading.Thread(target=feed_real_time, args=(daemon, speech, stop), daemon=True)
    feeder.start()
    try:
        wait_for(page, "meterPeak.db !== null && meterPeak.db > -40", 5)   # speech is loud
        wait_for(page, "document.getElementById('level-text').textContent.endsWith('dBFS')", 3)
        wait_for(page, "document.querySelector('.score[data-wake=\"hey_jarvis\"]').dataset.score !== ''", 3)
        rest = page.evaluate("parseFloat(document.getElementById('level-rest').style.width)")
        assert rest < 100   # the level shows
        # "hey jarvis" (espeak) crosses the threshold: its peak stays marked for 2 s
        wait_for(page, "document.querySelector('.score[data-wake=\"hey_jarvis\"]').classList.contains('fired')", 10)
        box = page.locator("#live-title").bounding_box()
        live = page.locator(".live").bounding_box()
        shoot(page, "status-live-meter.png", clip={"x": box["x"] - 8, "y": box["y"] - 8, "width": live["width"] + 16,
                                                  "height": live["y"] + live["height"] - box["y"] + 16},
              full_page=True)
        shoot(page, "status-overview.png")   # the first screenful: header, chat, health, live meter
    finally:
        feeder.join(15)
        stop.set()
    peak = page.evaluate("meterPeak")
    print("meter peak:", peak)
    assert peak["db"] > -40 and daemon.settings.wake.threshold <= peak["scores"]["hey_jarvis"] <= 1
    threshold = page.text_content(".score[data-wake='hey_jarvis'] .value").split("/")[1].strip()
    assert float(threshold) == daemon.settings.wake.threshold

    page.wait_for_timeout(1500)   # the audio stopped: the level goes blank and says so
    text = page.text_content("#level-text")
    assert "no microphone" in text or "no sound" in text, text
    page.context.close()
    end = time.monotonic() + 5
    while daemon.meter.wanted and time.monotonic() < end:
        time.sleep(0.05)
    assert daemon.meter.wanted == 0, "the closed page's meter stream is still counted"


def test_meter_stream_is_fed_only_while_open(web_server, daemon):
    """No stream: frames leave the meter untouched. One stream: readings about 5 a second."""
    frame = pcm16(jfk_audio()[16_000:16_000 + FRAME])
    daemon.owner.post_frame(frame)
    time.sleep(0.3)
    assert daemon.meter.wanted == 0 and daemon.meter.take()[0] is None
    readings = []
    with httpx.stream("GET", web_server.url + "api/meter", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        t0 = time.monotonic()
        for line in stream.iter_lines():
            if line.startswith("data: "):
                readings.append(json.loads(line[6:]))
                if len(readings) == 3:
                    daemon.owner.post_frame(frame)
            if len(readings) == 8:
                watching = daemon.meter.wanted   # (leaving iter_lines closes the connection)
                break
        took = time.monotonic() - t0
    assert watching == 1
    assert 1.0 < took < 2.5, took   # 8 readings at ~5 Hz
    assert {"level_db", "scores", "threshold", "state", "mic", "wake_words"} <= readings[0].keys()
    assert any(r["level_db"] is not None and r["level_db"] > -60 for r in readings[3:]), readings
    end = time.monotonic() + 5
    while daemon.meter.wanted and time.monotonic() < end:
        time.sleep(0.05)
    assert daemon.meter.wanted == 0
    foreign = httpx.get(web_server.url + "api/meter", headers={"Host": "evil.example:80"})
    assert foreign.status_code == 400


def test_server_stop_ends_open_meter_streams(daemon):
    from voiced.config import WebSettings
    from voiced.web import start_web_server

    server = start_web_server(daemon, WebSettings(port=free_port()))
    ended = threading.Event()

    def listen():
        with httpx.stream("GET", server.url + "api/meter", timeout=30) as stream:
            for _ in stream.iter_lines():
                pass
        ended.set()
    threading.Thread(target=listen, daemon=True).start()
    end = time.monotonic() + 5
    while daemon.meter.wanted == 0 and time.monotonic() < end:
        time.sleep(0.02)
    assert daemon.meter.wanted == 1
    t0 = time.monotonic()
    server.stop()
    assert not server.thread.is_alive() and time.monotonic() - t0 < 1.5, time.monotonic() - t0
    assert ended.wait(2) and daemon.meter.wanted == 0


# -- what it costs -----------------------------------------------------------------------
def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the Piper worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(rest[1]) == pid:
            total += (int(rest[11]) + int(rest[12])) / tick
    return total


def cpu_percent(pid: int, seconds: float = 10.0) -> float:
    t0, c0 = time.monotonic(), process_tree_cpu_s(pid)
    time.sleep(seconds)
    return 100.0 * (process_tree_cpu_s(pid) - c0) / (time.monotonic() - t0)


@pytest.mark.e2e
def test_idle_cpu_with_and_without_a_page(pulse_server, browser, tmp_path):  # noqa: F811
    """`voiced run` on the PulseAudio harness (its microphone delivers silence, so every frame
    reaches the wake word): CPU over 10 s with no page, with the page open (meter, events,
    status polls), and again after it closed; the no-page figures must agree."""
    port = free_port()
    env = {k: v for k, v in pulse_server.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    env.update(VOICED_WEB__PORT=str(port), VOICED_LOGGING__LEVEL="INFO")
    log = open(tmp_path / "daemon.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "voiced", "run"], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end:
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            try:
                if httpx.get(url + "readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        status = httpx.get(url + "api/status").json()
        assert status["input"]["ok"], status["input"]   # frames flow: the hook runs on each one
        time.sleep(3)
        baseline = cpu_percent(proc.pid)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.goto(url)
        wait_for(page, "meterPeak.db !== null", 10)   # the meter measures the (silent) microphone
        with_page = cpu_percent(proc.pid)
        readings = page.evaluate("meterPeak.readings")
        context.close()
        time.sleep(2)
        after = cpu_percent(proc.pid)
        print(f"voiced run, idle, CPU of one core: no page {baseline:.2f} %, page open {with_page:.2f} % "
              f"({readings} meter readings), page closed again {after:.2f} %")
        assert readings >= 40   # ~5 a second
        assert abs(after - baseline) <= 0.25 * baseline + 1.0, (baseline, after)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_level_and_throttle_without_a_daemon():
    """The meter's arithmetic: dBFS of known signals; one level per LEVEL_EVERY_S at most; the
    highest level and score since the last reading; nothing kept once nobody watches."""
    from voiced import meter as meter_mod
    from voiced.meter import Meter, rms_dbfs

    t = np.arange(FRAME) / 16_000
    sine = (np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    assert rms_dbfs(sine) == pytest.approx(-3.01, abs=0.05)
    assert rms_dbfs((sine // 10).astype(np.int16)) == pytest.approx(-23.0, abs=0.1)
    assert rms_dbfs(np.zeros(FRAME, np.int16)) == meter_mod.FLOOR_DB
    assert rms_dbfs(np.full(FRAME, 0.5, np.float32)) == pytest.approx(-6.02, abs=0.01)

    class Detector:
        scores = {"hey_jarvis": 0.2}
    m = Meter()
    m.watch()
    m.frame(sine // 10, Detector())
    Detector.scores = {"hey_jarvis": 0.9}
    m.frame(sine, Detector())          # within LEVEL_EVERY_S: not measured, but its score counts
    level, scores, age = m.take()
    assert level == pytest.approx(-23.0, abs=0.1) and scores == {"hey_jarvis": 0.9} and age < 1
    assert m.take()[:2] == (None, {})  # a reading resets them
    time.sleep(meter_mod.LEVEL_EVERY_S + 0.01)
    m.frame(sine)                      # measured, then dropped: nobody watches any more
    m.unwatch()
    assert m.wanted == 0 and m.take()[:2] == (None, {})
