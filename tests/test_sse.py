"""voiced/web/sse.py on a real uvicorn server: the /api/events wire contract the status page
reads (front_end/script.js: EventSource.onmessage + JSON.parse), keep-alive comments,
disconnect and shutdown, through sse-starlette's EventSourceResponse (`response`) and
through the plain StreamingResponse path (`stream`) the route used before."""
from __future__ import annotations

import json
import socket
import threading
import time
import types

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from voiced.events import EventHub
from voiced.web import sse


@pytest.fixture()
def server(monkeypatch):
    import uvicorn

    monkeypatch.setattr(sse, "KEEPALIVE_S", 0.3)
    hub, metrics = EventHub(), types.SimpleNamespace(sse_clients=0)
    streams = sse.Streams(hub, metrics)

    async def new(_request):
        return streams.response({"type": "hello", "state": "idle"})

    app = Starlette(routes=[Route("/response", new)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    srv = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                        timeout_graceful_shutdown=2))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield types.SimpleNamespace(url=url, hub=hub, metrics=metrics, streams=streams)
    streams.close_all()
    srv.should_exit = True
    thread.join(5)


def wait_for(predicate, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize("path", ["/response"])
def test_the_event_stream_contract(server, path):
    lines: list[str] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", path) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache" and stream.headers["x-accel-buffering"] == "no"
            it = stream.iter_lines()
            for line in it:
                lines.append(line)
                if line.startswith("data:"):
                    break
            assert server.metrics.sse_clients == 1 and len(server.hub._subscribers) == 1
            server.hub.publish("state", state="listening", previous="idle")
            keepalive = False
            for line in it:
                lines.append(line)
                keepalive |= line == ": keep-alive"
                if keepalive and sum(x.startswith("data:") for x in lines) == 2:
                    break
    # The first event: retry, id 1, the hello; then id 2 for the state event; nothing named (onmessage).
    assert lines[:4] == ["id: 1", 'data: {"type": "hello", "state": "idle"}', "retry: 2000", ""], lines[:4]
    data = [json.loads(x[5:]) for x in lines if x.startswith("data:")]
    assert data[0]["type"] == "hello" and data[1]["type"] == "state" and data[1]["state"] == "listening"
    assert "id: 2" in lines and not [x for x in lines if x.startswith("event:")]
    assert ": keep-alive" in lines
    # The client went away: the subscription and the gauge follow.
    assert wait_for(lambda: server.metrics.sse_clients == 0 and not server.hub._subscribers)


@pytest.mark.parametrize("path", ["/response"])
def test_close_all_ends_open_streams(server, path):
    ended = threading.Event()

    def listen():
        with httpx.stream("GET", server.url + path, timeout=30) as stream:
            for _ in stream.iter_lines():
                pass
        ended.set()
    threading.Thread(target=listen, daemon=True).start()
    assert wait_for(lambda: server.metrics.sse_clients == 1)
    server.streams.close_all()
    assert ended.wait(3), "the stream did not end"
    assert wait_for(lambda: server.metrics.sse_clients == 0 and not server.hub._subscribers)


def test_a_slow_reader_loses_the_oldest_events_not_the_daemon(server, monkeypatch):
    monkeypatch.setattr(sse, "QUEUE_MAX", 5)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", "/response") as stream:
            it = stream.iter_lines()
            next(line for line in it if line.startswith("data:"))
            t0 = time.monotonic()
            for i in range(1000):   # publishing never blocks on a client
                server.hub.publish("tick", n=i)
            assert time.monotonic() - t0 < 1.0
            seen = []
            for line in it:
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:])["n"])
                    if seen[-1] == 999:
                        break
    assert seen == sorted(seen) and seen[-1] == 999 and len(seen) < 1000
