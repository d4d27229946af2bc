"""The phrase cache on the real Piper voice: a repeated reply is replayed, not synthesised again."""
from __future__ import annotations

import time

import numpy as np

from voiced.engines.phrase_cache import PhraseCache

REPLY = "I can tell you the time and the date. Connect a language model for more."


def timed(cache: PhraseCache, key, engine, text: str) -> tuple[list, float]:
    t0 = time.perf_counter()
    chunks = list(cache.speak(key, lambda: engine.synthesize(text)))
    return chunks, time.perf_counter() - t0


def test_a_repeated_reply_comes_from_the_cache(piper_voice):
    cache = PhraseCache(max_items=8)
    first, cold = timed(cache, ("piper", REPLY), piper_voice, REPLY)
    again, warm = timed(cache, ("piper", REPLY), piper_voice, REPLY)
    print(f"phrase cache: synthesised in {cold * 1000:.0f} ms, replayed in {warm * 1000:.2f} ms "
          f"({cold / max(warm, 1e-6):.0f}x)")
    assert cache.stats() == {"items": 1, "hits": 1, "misses": 1}
    assert len(first) == len(again) == 2   # sentence by sentence, as synthesised
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again))
    assert warm < cold / 10


def test_another_voice_or_text_is_a_miss(piper_voice):
    cache = PhraseCache(max_items=8)
    list(cache.speak(("piper", REPLY), lambda: piper_voice.synthesize(REPLY)))
    list(cache.speak(("piper", REPLY, "faster"), lambda: piper_voice.synthesize(REPLY)))
    list(cache.speak(("piper", "Hello."), lambda: piper_voice.synthesize("Hello.")))
    assert cache.stats()["misses"] == 3 and cache.stats()["hits"] == 0


def test_a_cut_reply_is_not_stored(piper_voice):
    cache = PhraseCache(max_items=8)
    speech = cache.speak("k", lambda: piper_voice.synthesize(REPLY))
    next(speech)
    speech.close()   # barge-in: playback stops taking chunks
    assert cache.stats()["items"] == 0
    list(cache.speak("k", lambda: piper_voice.synthesize(REPLY)))
    assert cache.stats() == {"items": 1, "hits": 0, "misses": 2}


def test_least_recently_used_goes_first_and_long_replies_are_not_kept(piper_voice):
    cache = PhraseCache(max_items=2, max_seconds=3.0)
    for text in ("One.", "Two.", "One.", "Three."):   # "One." was used again, so "Two." goes
        list(cache.speak(text, lambda text=text: piper_voice.synthesize(text)))
    assert cache.stats()["hits"] == 1
    list(cache.speak("One.", lambda: piper_voice.synthesize("One.")))
    list(cache.speak("Two.", lambda: piper_voice.synthesize("Two.")))
    assert cache.stats()["hits"] == 2 and cache.stats()["misses"] == 4
    list(cache.speak("long", lambda: piper_voice.synthesize(REPLY * 2)))   # ~8 s: over max_seconds
    assert "long" not in cache._items


def test_size_zero_turns_it_off(piper_voice):
    cache = PhraseCache(max_items=0)
    for _ in range(2):
        list(cache.speak("k", lambda: piper_voice.synthesize("Hello.")))
    assert cache.stats()["items"] == 0 and cache.stats()["hits"] == 0


def test_total_audio_is_bounded(piper_voice):
    cache = PhraseCache(max_items=100, max_seconds=20.0, max_total_s=5.0)
    for text in ("One.", "Two.", "Three.", "Four.", "Five.", "Six.", REPLY):
        list(cache.speak(text, lambda text=text: piper_voice.synthesize(text)))
    print(f"phrase cache holds {cache.stats()['items']} replies, {cache.seconds:.1f} s of audio")
    assert cache.seconds <= 5.0 and REPLY in cache._items   # the oldest went first
