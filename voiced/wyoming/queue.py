"""The models serve one request step at a time, in arrival order: several clients share one
GPU without parallel copies of a model fighting over its memory. A bounded number of
requests may wait; beyond that the client is told "busy" at once instead of waiting forever."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """More requests than the one running plus max_waiting."""


class ModelQueue:
    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self.active = 0                  # admitted requests: the running one and those waiting
        self.counts = {"served": 0, "refused": 0, "failed": 0}
        # One worker thread: FIFO, and model calls never run in parallel.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="wyoming-model")

    @asynccontextmanager
    async def admit(self):
        """One request's place in the queue (all on the server's event loop: no lock needed)."""
        if self.active > self.max_waiting:
            self.counts["refused"] += 1
            raise QueueFull(f"server busy: {self.active} requests in progress or waiting (max_queue = {self.max_waiting})")
        self.active += 1
        try:
            yield self
            self.counts["served"] += 1
        except Exception:
            self.counts["failed"] += 1
            raise
        finally:
            self.active -= 1

    async def run(self, step: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, step)

    async def stream(self, produce: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The items of produce() as they come, the whole iteration being one queue step:
        engines may hold their lock between sentences, so two replies must not interleave."""
        loop, items, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        done = object()

        def job() -> None:
            try:
                gen = produce()
                try:
                    for item in gen:
                        loop.call_soon_threadsafe(items.put_nowait, item)
                        if stop.is_set():   # the client went away: stop speaking for it
                            break
                finally:
                    gen.close()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                loop.call_soon_threadsafe(items.put_nowait, exc)
            loop.call_soon_threadsafe(items.put_nowait, done)

        future = loop.run_in_executor(self._executor, job)
        try:
            while (item := await items.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            await asyncio.shield(future)

    def stats(self) -> dict:
        return {"active": self.active, "max_queue": self.max_waiting, **self.counts}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
