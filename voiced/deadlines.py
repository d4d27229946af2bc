"""Stage deadlines: a hung STT, responder or TTS call is abandoned so the turn ends cleanly.

Python cannot kill a thread, so the call runs on a helper thread and is left behind when
its deadline passes (its late result is dropped). If stages keep hanging, the daemon
reports itself not alive and the systemd watchdog restarts it.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

from .engines.base import TransientEngineError

T = TypeVar("T")
_DONE = object()


class StageTimeout(TransientEngineError):
    def __init__(self, stage: str, seconds: float):
        super().__init__(f"{stage} took longer than {seconds:g} s and was abandoned")
        self.stage = stage


def call_with_deadline(stage: str, fn: Callable[[], T], seconds: float) -> T:
    box: queue.Queue = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            box.put((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box.put((False, exc))

    threading.Thread(target=run, name=f"stage-{stage}", daemon=True).start()
    try:
        ok, value = box.get(timeout=seconds)
    except queue.Empty:
        raise StageTimeout(stage, seconds) from None
    if ok:
        return value
    raise value


def iter_with_deadline(stage: str, make: Callable[[], Iterator[T]], seconds: float) -> Iterator[T]:
    """Each item must arrive within `seconds` (per item: a long reply is fine, a stuck one is not)."""
    items: queue.Queue = queue.Queue(maxsize=2)   # small: the producer stays one sentence ahead
    cancelled = threading.Event()

    def produce() -> None:
        try:
            for item in make():
                while not cancelled.is_set():
                    try:
                        items.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if cancelled.is_set():
                    return
            items.put(("done", _DONE))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(("error", exc))

    threading.Thread(target=produce, name=f"stage-{stage}", daemon=True).start()
    try:
        while True:
            try:
                kind, value = items.get(timeout=seconds)
            except queue.Empty:
                raise StageTimeout(stage, seconds) from None
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        cancelled.set()   # consumer stopped (done, barge-in, error): let the producer end
