"""An LRU cache of whole spoken replies, for the phrases a daemon says again and again
("I can tell you the time and the date...", "Sorry, I didn't catch that.", greetings).

A hit replays the stored audio at once instead of running the TTS model again: on a GPU with
Chatterbox that saves a second or more of model time; on a CPU it saves the fallback's time
and its CPU. Only complete replies are stored (one cut by barge-in is not), and only short ones.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

from .base import SpeechChunk


class PhraseCache:
    def __init__(self, max_items: int = 64, max_seconds: float = 20.0, max_total_s: float = 300.0):
        # max_total_s bounds memory whatever the replies: 300 s of float32 at 24 kHz is ~29 MB.
        self.max_items, self.max_seconds, self.max_total_s = max_items, max_seconds, max_total_s
        self._items: OrderedDict[Hashable, tuple[SpeechChunk, ...]] = OrderedDict()
        self._seconds: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def speak(self, key: Hashable, synthesize: Callable[[], Iterator[SpeechChunk]]) -> Iterator[SpeechChunk]:
        """The reply's chunks: from the cache, or from `synthesize()` (streamed as they come)."""
        if self.max_items <= 0:
            yield from synthesize()
            return
        with self._lock:
            stored = self._items.get(key)
            if stored is not None:
                self._items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if stored is not None:
            yield from stored
            return
        chunks, seconds = [], 0.0
        for chunk in synthesize():
            chunks.append(chunk)
            seconds += len(chunk.audio) / chunk.sample_rate
            yield chunk
        # Reached only when the whole reply was produced (a closed generator stops at its yield).
        if chunks and seconds <= self.max_seconds:
            with self._lock:
                self._items[key], self._seconds[key] = tuple(chunks), seconds
                while len(self._items) > self.max_items or sum(self._seconds.values()) > self.max_total_s:
                    old, _ = self._items.popitem(last=False)
                    del self._seconds[old]

    def stats(self) -> dict:
        with self._lock:
            return {"items": len(self._items), "hits": self.hits, "misses": self.misses}

    @property
    def seconds(self) -> float:
        with self._lock:
            return sum(self._seconds.values())
