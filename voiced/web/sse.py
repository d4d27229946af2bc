"""GET /api/events: the daemon's EventHub as Server-Sent Events.

The hub publishes from daemon threads; each stream hands events to its own asyncio queue
with call_soon_threadsafe. The subscription lives exactly as long as the generator: a
client that goes away cancels it and `finally` unsubscribes, so nothing leaks."""
from __future__ import annotations

import asyncio
import itertools
import json

KEEPALIVE_S = 15.0   # a comment line this often keeps proxies and the browser from timing out
QUEUE_MAX = 256      # a client that reads slower than this loses the oldest events


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

    async def stream(self, hello: dict):
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
            yield f"retry: 2000\nid: {next(ids)}\ndata: {json.dumps(hello)}\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield f"id: {next(ids)}\ndata: {json.dumps(event, default=str)}\n\n"
        finally:
            unsubscribe()
            self._open.discard(entry)
            self.metrics.sse_clients -= 1
