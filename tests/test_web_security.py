"""Who may use the API: Host (DNS rebinding), Origin (cross-site POSTs), the token when one
is configured, the refusal to serve a non-loopback address without one, and a clean stop."""
from __future__ import annotations

import threading
import time

import httpx
import pytest
from pydantic import ValidationError

from tests.fixtures_web import free_port

pytest_plugins = ["tests.fixtures_web"]
TOKEN = "test-token-0123456789abcdef"


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost.evil.example:{port}", ""])
def test_foreign_host_is_refused(http, web_server, daemon, host):
    port = web_server.url.rsplit(":", 1)[1].strip("/")
    for method, path in (("GET", "/api/status"), ("GET", "/"), ("POST", "/api/trigger")):
        response = http.request(method, path, headers={"host": host.format(port=port)})
        assert response.status_code == 400 and "Host" in response.json()["error"], (method, path)
    assert http.get("/healthz").status_code == 200


def test_localhost_names_are_accepted(web_server, daemon):
    port = web_server.url.rsplit(":", 1)[1].strip("/")
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert httpx.get(web_server.url + "api/status", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("headers", [{"origin": "http://evil.example"}, {"origin": "null"},
                                     {"origin": "http://127.0.0.1:1"}, {"sec-fetch-site": "cross-site"}])
def test_cross_origin_posts_are_refused(http, daemon, headers):
    from voiced.pipeline import PipelineState as S

    for path, kwargs in (("/api/trigger", {}), ("/api/say", {"json": {"text": "hi"}}),
                         ("/api/utterance", {"files": {"audio": ("a", b"x", "audio/webm")}})):
        response = http.post(path, headers=headers, **kwargs)
        assert response.status_code == 403 and "refused" in response.json()["error"], path
    assert daemon.pipeline.state == S.IDLE   # nothing was started


def test_same_origin_post_and_cross_origin_read_without_cors(http, web_server, daemon):
    origin = web_server.url.rstrip("/")
    assert http.post("/api/trigger", headers={"origin": origin, "sec-fetch-site": "same-origin"}).status_code == 202
    read = http.get("/api/status", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in read.headers   # a foreign page cannot read it


@pytest.fixture()
def token_client(daemon):
    from fastapi.testclient import TestClient

    from voiced.config import WebSettings
    from voiced.web import create_app

    app = create_app(daemon, WebSettings(token=TOKEN))
    with TestClient(app, base_url="http://127.0.0.1:8765", follow_redirects=False) as client:
        yield client


def test_token_is_required_when_configured(token_client):
    assert token_client.get("/healthz").status_code == 200   # monitors need no token
    assert token_client.get("/").status_code == 200          # the page shell holds no data
    for headers in ({}, {"authorization": "Bearer wrong-token-0123456789"}, {"authorization": TOKEN}):
        response = token_client.get("/api/status", headers=headers)
        assert response.status_code == 401 and "token" in response.json()["error"]
        assert token_client.post("/api/trigger", headers=headers).status_code == 401
    assert token_client.get("/metrics").status_code == 401
    assert token_client.get("/openapi.json").status_code == 401
    assert token_client.get("/api/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_browser_gets_the_token_into_a_cookie(token_client):
    assert token_client.get("/?token=wrong").status_code == 401
    login = token_client.get(f"/?token={TOKEN}")
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert token_client.get("/api/status").status_code == 200   # the client kept the cookie


def test_non_loopback_bind_needs_a_token(daemon):
    from voiced.config import WebSettings
    from voiced.web import create_app

    with pytest.raises(ValidationError, match="not a loopback address"):
        WebSettings(host="0.0.0.0")
    with pytest.raises(ValidationError, match="at least 16"):
        WebSettings(host="0.0.0.0", token="short")
    unchecked = WebSettings.model_construct(**{**WebSettings().model_dump(), "host": "192.0.2.10"})
    with pytest.raises(ValueError, match="token"):
        create_app(daemon, unchecked)   # even settings that skipped validation are refused
    assert WebSettings(host="0.0.0.0", token=TOKEN).token == TOKEN
    assert WebSettings(host="::1").host == "::1" and WebSettings(host="localhost").token == ""


def test_port_in_use_is_a_clear_error(web_server, daemon):
    from voiced.config import WebSettings
    from voiced.web import start_web_server

    port = int(web_server.url.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(OSError, match=f"cannot serve the status page on 127.0.0.1:{port}"):
        start_web_server(daemon, WebSettings(port=port))


def test_stop_ends_open_event_streams_promptly(daemon):
    from voiced.config import WebSettings
    from voiced.web import start_web_server

    subscribers = len(daemon.events._subscribers)
    server = start_web_server(daemon, WebSettings(port=free_port()))
    ended = threading.Event()

    def listen():
        with httpx.stream("GET", server.url + "api/events", timeout=30) as stream:
            for _ in stream.iter_lines():
                pass
        ended.set()
    threading.Thread(target=listen, daemon=True).start()
    end = time.monotonic() + 5
    while server.app.state.metrics.sse_clients == 0 and time.monotonic() < end:
        time.sleep(0.02)
    t0 = time.monotonic()
    server.stop()
    assert not server.thread.is_alive() and time.monotonic() - t0 < 4
    assert ended.wait(2), "the client's stream did not end"
    assert len(daemon.events._subscribers) == subscribers   # stream and metrics unsubscribed


def test_cli_client_sends_the_token(daemon, capsys):
    from voiced.config import WebSettings
    from voiced.web import start_web_server
    from voiced.web.client import base_url, print_status

    web = WebSettings(port=free_port(), token=TOKEN)
    server = start_web_server(daemon, web)
    try:
        assert base_url(web) == server.url
        assert print_status(server.url) == 1 and "token" in capsys.readouterr().err
        assert print_status(server.url, token=TOKEN) == 0 and "idle" in capsys.readouterr().out
    finally:
        server.stop()
