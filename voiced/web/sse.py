"""GET /api/events: the daemon's EventHub as Server-Sent Events, through sse-starlette.

sse-starlette writes the wire format, sends the keep-alive comments and notices a client
that went away (it cancels the generator). What stays here is the bridge from the hub,
which publishes on daemon threads: each stream hands events to its own asyncio queue with
call_soon_threadsafe. The subscription lives exactly as long as the generator: `finally`
unsubscribes, so nothing leaks. The wire format the status page (front_end/script.js,
EventSource.onmessage + JSON.parse) reads: unnamed events, one JSON object per `data:`
line, an `id:` per event, `retry: 2000` on the first (hello), `: keep-alive` comments."""
from __future__ import annotations

import asyncio
import itertools
import json

from sse_starlette import EventSourceResponse, ServerSentEvent

KEEPALIVE_S = 15.0   # a comment line this often keeps proxies and the browser from timing out
QUEUE_MAX = 256      # a client that reads slower than this loses the oldest events
RETRY_MS = 2000      # the browser's reconnect delay after the stream drops
SEP = "\n"           # sse-starlette's default is \r\n; both are valid, \n is what voiced always sent
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _keepalive() -> ServerSentEvent:
    return ServerSentEvent(comment="keep-alive", sep=SEP)


class Streams:
    """The open streams, so a server shutdown can end them instead of waiting on them."""

    def __init__(self, hub, metrics):
        self.hub = hub
        self.metrics = metrics
        self._open: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()

    def close_all(self) -> None:
        for loop, queue in list(self._open):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:   # that loop is already closed
                pass

    def response(self, hello: dict) -> EventSourceResponse:
        """The /api/events response: `hello` first, then every hub event until the client
        goes away or the server stops."""
        return EventSourceResponse(self.events(hello), headers=HEADERS, ping=KEEPALIVE_S, sep=SEP,
                                   ping_message_factory=_keepalive)

    async def events(self, hello: dict):
        """The stream's events (ServerSentEvent), without keep-alives (the response sends them)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_MAX + 1)
        ids = itertools.count(1)

        def put(event):
            if queue.qsize() >= QUEUE_MAX:
                queue.get_nowait()
            queue.put_nowait(event)

        def deliver(event: dict) -> None:   # runs on a daemon thread
            try:
                loop.call_soon_threadsafe(put, event)
            except RuntimeError:   # the server's loop has closed
                pass

        entry = (loop, queue)
        unsubscribe = self.hub.subscribe(deliver)
        self._open.add(entry)
        self.metrics.sse_clients += 1
        try:
            yield ServerSentEvent(data=json.dumps(hello), id=str(next(ids)), retry=RETRY_MS, sep=SEP)
            while (event := await queue.get()) is not None:
                yield ServerSentEvent(data=json.dumps(event, default=str), id=str(next(ids)), sep=SEP)
        finally:
            unsubscribe()
            self._open.discard(entry)
            self.metrics.sse_clients -= 1
