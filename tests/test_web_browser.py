"""The status page in a real browser: Debian chromium driven by Playwright, its fake
microphone fed with real speech (jfk), against the real daemon and server. Chromium is
required: a missing browser FAILS with the reason (CI installs it)."""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.fixtures_stt import words
from tests.fixtures_web import ARTIFACTS

pytest_plugins = ["tests.fixtures_web"]
CHROMIUM = "/usr/bin/chromium"
RECORD_S = 6.0   # jfk says "And so my fellow Americans, ask not..." in its first 6 s


@pytest.fixture(scope="module")
def browser(recordings):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    "the status page must be tested in a real browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing (pip install playwright; no browser download needed)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={recordings['wav']}"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, web_server, daemon):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    foreign: list[str] = []
    problems: list[str] = []
    origin = web_server.url.rstrip("/")

    def only_local(route):   # the page must work offline: nothing outside its own origin
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()
    page.route("**/*", only_local)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.foreign, page.problems = foreign, problems
    yield page
    context.close()


def wait_for(page, expression: str, timeout: float = 10.0):
    """Poll a JS expression until truthy. Playwright's wait_for_function evaluates strings
    with eval(), which the page's Content-Security-Policy rightly forbids."""
    end = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.1)


def colour(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"el => getComputedStyle(el)['{prop}']")


def test_mic_button_records_sends_and_plays_the_reply(page, web_server):
    page.goto(web_server.url)
    wait_for(page, "document.getElementById('state').dataset.state === 'idle'", 10)
    wait_for(page, "!document.querySelector('#card-stt dd').textContent.includes('…')")

    button = ".chat-container .mic-button"
    assert colour(page, button, "backgroundColor") == "rgb(255, 152, 0)"
    assert colour(page, button, "color") == "rgb(255, 255, 255)"
    page.hover(button)
    wait_for(page, f"getComputedStyle(document.querySelector('{button}')).backgroundColor "
                           "=== 'rgb(230, 137, 0)'", 2)
    assert page.get_attribute(button, "aria-pressed") == "false"
    assert page.evaluate("isRecording") is False

    page.click(button)
    wait_for(page, "isRecording === true", 5)
    assert page.get_attribute(button, "aria-pressed") == "true"
    assert page.evaluate("mediaRecorder.state") == "recording"
    page.wait_for_timeout(RECORD_S * 1000)
    with page.expect_response(lambda r: r.url.endswith("/api/utterance"), timeout=60_000) as answer:
        page.click(button)
        assert page.evaluate("isRecording") is False
        assert page.get_attribute(button, "aria-pressed") == "false"
    assert answer.value.status == 200, answer.value.text()
    sent = answer.value.request.headers["content-type"]
    assert sent.startswith("multipart/form-data"), sent

    turn = f"#turn-{answer.value.json()['turn']}"   # this page's own turn, among the earlier ones
    page.locator(f"{turn} .bubble.bot").wait_for(timeout=10_000)
    heard = words(page.text_content(f"{turn} .bubble.user"))
    assert "so my fellow america" in heard, heard   # the recording stops mid-sentence
    reply = page.text_content(f"{turn} .bubble.bot")
    assert reply.startswith("You said:") and "fellow america" in reply.lower()
    assert "from a browser" in page.text_content(f"{turn} .meta")

    audio = f"document.querySelector('{turn} audio')"
    src = page.evaluate(f"{audio}.src")
    assert urlparse(src).path.startswith("/api/replies/") and urlparse(src).path.endswith(".wav")
    wait_for(page, f"{audio}.dataset.played === 'true'", 10)
    assert page.evaluate(f"{audio}.duration") > 2
    wait_for(page, f"{audio}.currentTime > 0.5", 10)   # it really advances
    assert "Answered in" in page.text_content("#mic-status")

    wait_for(page, "document.querySelector('#latency').textContent.includes('stt')", 10)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})   # a phone: one column, nothing cut off
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "status-page-phone.png"), full_page=True)
    assert not page.foreign, f"the page tried to reach other hosts: {page.foreign}"
    assert not page.problems, page.problems


def test_busy_daemon_is_explained(page, web_server, daemon):
    page.goto(web_server.url)
    wait_for(page, "document.getElementById('state').dataset.state === 'idle'", 10)
    assert page.evaluate("fetch('/api/trigger', {method: 'POST'}).then(r => r.status)") == 202
    wait_for(page, "document.getElementById('state').dataset.state === 'listening'", 5)
    page.click(".mic-button")
    wait_for(page, "isRecording === true", 5)
    page.wait_for_timeout(1_000)
    page.click(".mic-button")
    wait_for(page, "document.getElementById('mic-status').textContent.includes('busy')", 10)
    assert "error" in page.get_attribute("#mic-status", "class")


@pytest.mark.parametrize("flags, wording", [
    (["--use-fake-device-for-media-stream"], "denied"),   # no auto-accept: headless refuses the prompt
    (["--use-fake-ui-for-media-stream"], "No microphone"),   # accepted, but this machine has no audio input
])
def test_denied_or_absent_microphone_is_explained(web_server, daemon, browser, flags, wording):
    other = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", *flags])
    try:
        page = other.new_page()
        page.goto(web_server.url)
        page.focus(".mic-button")   # a real <button>: usable from the keyboard
        page.keyboard.press("Enter")
        wait_for(page, f"document.getElementById('mic-status').textContent.includes('{wording}')", 10)
        assert page.evaluate("isRecording") is False
        assert page.get_attribute(".mic-button", "aria-pressed") == "false"
    finally:
        other.close()


def test_docs_page_renders_offline(page, web_server):
    page.goto(web_server.url + "docs")
    page.locator(".opblock-summary-path[data-path='/api/utterance']").wait_for(timeout=15_000)
    assert page.locator(".opblock").count() >= 8   # every operation rendered from /openapi.json
    assert not page.foreign, f"/docs tried to reach other hosts: {page.foreign}"


def test_voice_picker_lists_voices_and_sets_the_default(page, web_server, daemon):
    jfk = (Path(__file__).parent / "data" / "jfk_16k.flac").read_bytes()
    daemon.voices.add("jfk", jfk)
    try:
        page.goto(web_server.url)
        wait_for(page, "document.querySelectorAll('#voice-select option').length === 2", 10)
        assert page.locator("label[for='voice-select']").text_content() == "Reply voice"
        assert page.eval_on_selector("#voice-select", "s => s.value") == ""
        assert "jfk (11 s clip)" in page.text_content("#voice-select")
        with page.expect_response(lambda r: r.url.endswith("/api/voices/default"), timeout=10_000) as put:
            page.select_option("#voice-select", "jfk")
        assert put.value.status == 200 and put.value.request.method == "PUT"
        wait_for(page, "document.getElementById('voice-status').textContent.includes('Replies now use jfk')", 10)
        assert daemon.voices.default_name() == "jfk" and daemon.default_style().voice == "jfk"
        if daemon.tts.info.name != "chatterbox":   # the page says what the engine cannot do
            assert "cannot clone a voice" in page.text_content("#voice-status")

        page.reload()                                 # the choice is the daemon's, not the page's
        wait_for(page, "document.getElementById('voice-select').value === 'jfk'", 10)
        page.focus("#voice-select")                   # a real <select>: usable from the keyboard
        page.keyboard.press("ArrowUp")
        wait_for(page, "document.getElementById('voice-status').textContent.includes('configured voice')", 10)
        assert daemon.voices.default_name() is None
        assert not page.foreign and not page.problems, (page.foreign, page.problems)

        daemon.voices.remove("jfk")                   # removed elsewhere: choosing it now fails clearly
        page.evaluate("document.getElementById('voice-select').add(new Option('jfk', 'jfk'))")
        page.select_option("#voice-select", "jfk")
        wait_for(page, "document.getElementById('voice-status').textContent.includes('404')", 10)
        assert "no voice named 'jfk'" in page.text_content("#voice-status")
        assert "error" in page.get_attribute("#voice-status", "class")
    finally:
        for voice in daemon.voices.list():
            daemon.voices.remove(voice.name)
