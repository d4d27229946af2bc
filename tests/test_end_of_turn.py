"""Semantic end of turn and speculation (issue "Answer the moment the speaker is done").

On a real human recording (JFK: "ask not | what your country can do for you, | ask what you can
do for your country."), with the real Silero VAD and the real Smart Turn model: the fixed 0.8 s
silence cuts the sentence at "ask not", the semantic end-pointer hears it out. Then the daemon
(real Whisper, Piper, builtin responder): the paused sentence is answered whole and the answer
started at the pause is thrown away; in silence mode the answer prepared at the pause is used;
a command responder is run early only when the user declares it free of side effects.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from tests.fixtures_audio import silero_segments
from tests.fixtures_stt import jfk_audio
from tests.support.feeding import feed, last_turn_id, wait_turn_end
from voiced.config import VadSettings
from voiced.models.openwakeword_assets import SILERO_VAD
from voiced.vad import EndpointKind, Endpointer, SileroVad

pytestmark = pytest.mark.slow
RATE, FRAME = 16_000, 1280


@pytest.fixture(scope="module")
def jfk_tail(oww_dir) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """JFK from "ask not" on (int16), 1.5 s of silence after it, and its speech segments."""
    pcm = np.clip(jfk_audio() * 32767, -32768, 32767).astype(np.int16)
    segments = silero_segments(pcm, oww_dir / SILERO_VAD)
    assert len(segments) == 4, f"expected 4 phrases in jfk, got {segments}"
    start = int((segments[1][0] - 0.15) * RATE)
    tail = np.concatenate([pcm[start:], np.zeros(int(1.5 * RATE), np.int16)])
    return tail, [(a - start / RATE, b - start / RATE) for a, b in segments[1:]]


def end_point(audio: np.ndarray, endpointer: Endpointer):
    endpointer.start()
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        result = endpointer.feed(audio[i:i + FRAME])
        if result is not None:
            return result.event
    pytest.fail("the request never ended")


def test_silence_cuts_the_paused_sentence_semantic_hears_it_out(jfk_tail, oww_dir, smart_turn_model):
    from voiced.end_of_turn import SmartTurn

    audio, phrases = jfk_tail
    last_word = phrases[-1][1]
    silence = end_point(audio, Endpointer(SileroVad(oww_dir / SILERO_VAD), VadSettings(end_of_turn="silence")))
    semantic_ep = Endpointer(SileroVad(oww_dir / SILERO_VAD), VadSettings(), turn_model=SmartTurn(smart_turn_model))
    semantic = end_point(audio, semantic_ep)
    for j in semantic_ep.judgements:
        print(f"pause after {j.speech_end_s:.2f} s: p={j.probability:.2f} ({j.ms:.0f} ms)")
    print(f"silence 0.8 s ended at {silence.time_s:.2f} s (speech end {silence.speech_end_s:.2f} s); "
          f"semantic at {semantic.time_s:.2f} s by {semantic.by} (speech end {semantic.speech_end_s:.2f} s, "
          f"last word {last_word:.2f} s)")
    assert silence.kind == EndpointKind.END and silence.speech_end_s < phrases[0][1] + 0.3, \
        "the fixed silence should cut the sentence at the pause after 'ask not'"
    assert semantic.kind == EndpointKind.END and semantic.by == "model"
    # Silero's segments end at the last word; the end-pointer's hysteresis keeps the room's tail.
    assert semantic.speech_end_s > last_word - 0.1, "the semantic end-pointer cut the sentence"
    unfinished = [j for j in semantic_ep.judgements if j.probability < 0.5]
    assert len(unfinished) >= 2, "both inner pauses should have sounded unfinished"
    # Answered soon after the last word: the model's pause, not a long silence.
    assert semantic.hangover_s < 0.5, semantic


def test_a_failing_model_falls_back_to_silence_and_says_so(jfk_tail, oww_dir):
    """A fault that cannot be caused with the real model: one that raises."""
    class Broken:
        name = "broken"

        def probability(self, audio):
            raise RuntimeError("onnxruntime: bad input")

    ep = Endpointer(SileroVad(oww_dir / SILERO_VAD), VadSettings(), turn_model=Broken())
    event = end_point(jfk_tail[0], ep)
    assert event.by == "silence" and not ep.semantic and "bad input" in ep.model_error
    assert event.hangover_s >= 0.8 - 0.08   # silence_s decided


def test_missing_model_means_silence_mode_with_a_warning(settings, tmp_path, caplog):
    from voiced.end_of_turn import load_turn_model

    missing = settings.model_copy(update={"vad": settings.vad.model_copy(
        update={"smart_turn_model": str(tmp_path / "nope.onnx")})})
    with caplog.at_level(logging.WARNING):
        assert load_turn_model(missing) is None
    assert "voiced models fetch" in caplog.text and "silence_s" in caplog.text
    off = settings.model_copy(update={"vad": settings.vad.model_copy(update={"end_of_turn": "silence"})})
    assert load_turn_model(off) is None


# -- the daemon ---------------------------------------------------------------------------
def reload_with(daemon, vad: dict | None = None, responder: dict | None = None):
    s = daemon.settings
    new = s.model_copy(update={"vad": s.vad.model_copy(update=vad or {}),
                               "responder": s.responder.model_copy(update=responder or {})})
    daemon.reload_source = lambda: new
    daemon.request_reload()
    end = time.monotonic() + 20
    while daemon.settings is not new and time.monotonic() < end:
        time.sleep(0.05)
    assert daemon.settings is new, "the reload did not apply"


def one_turn(daemon, pcm: np.ndarray, realtime: float = 0.0):
    before = last_turn_id(daemon)
    assert daemon.begin_listening("api")
    feed(daemon, pcm, realtime)
    return wait_turn_end(daemon, before)


@pytest.fixture()
def restored(daemon):
    original = daemon.settings
    yield daemon
    daemon.reload_source = lambda: original
    daemon.request_reload()
    end = time.monotonic() + 20
    while daemon.settings is not original and time.monotonic() < end:
        time.sleep(0.05)


def test_daemon_answers_the_paused_sentence_whole(restored, jfk_tail, caplog):
    daemon = restored
    caplog.set_level(logging.INFO)
    reload_with(daemon, vad={"end_of_turn": "semantic", "speculate": True})
    assert daemon.endpointer.semantic, daemon.status()["end_of_turn"]
    counts = daemon.stats.counts
    turn = one_turn(daemon, jfk_tail[0], realtime=1.0)
    after = daemon.stats.counts
    print("heard:", turn.transcript, "| said:", turn.reply)
    text = turn.transcript.lower()
    assert "ask not" in text and text.rstrip(".!? ").endswith("country"), turn
    assert "sounds unfinished" in caplog.text and "end of turn: sounds finished" in caplog.text
    started = after.get("speculations_started", 0) - counts.get("speculations_started", 0)
    discarded = after.get("speculations_discarded", 0) - counts.get("speculations_discarded", 0)
    print(f"speculations started {started}, discarded {discarded}")
    assert started >= 1 and discarded >= 1, "the answer started at 'ask not' should have been thrown away"
    eot = daemon.status()["end_of_turn"]
    assert eot["mode"] == "semantic" and eot["model"] == "smart-turn-v3.2" and eot["decided_by"]["model"] >= 1


def test_silence_mode_uses_the_answer_prepared_at_the_pause(restored, caplog):
    """"And so my fellow Americans" then silence: the answer starts at 0.3 s of silence and is
    used when the 0.8 s end-pointer decides: the reply, and its first sentence's speech, were
    made before the end of the turn."""
    daemon = restored
    caplog.set_level(logging.INFO)
    reload_with(daemon, vad={"end_of_turn": "silence", "speculate": True})
    pcm = np.clip(jfk_audio()[:int(2.4 * RATE)] * 32767, -32768, 32767).astype(np.int16)
    counts = daemon.stats.counts
    turn = one_turn(daemon, np.concatenate([pcm, np.zeros(2 * RATE, np.int16)]), realtime=1.0)
    assert "fellow americans" in turn.transcript.lower() and turn.reply.startswith("You said"), turn
    assert "answered at the pause" in caplog.text, "the prepared answer was not used"
    assert daemon.stats.counts.get("speculations_used", 0) > counts.get("speculations_used", 0)


@pytest.mark.parametrize("declared", [False, True])
def test_a_command_responder_runs_early_only_when_declared_free_of_side_effects(restored, caplog, declared):
    daemon = restored
    caplog.set_level(logging.INFO)
    reload_with(daemon, vad={"end_of_turn": "silence", "speculate": True},
                responder={"kind": "command", "command": ("cat",), "command_side_effect_free": declared})
    pcm = np.clip(jfk_audio()[:int(2.4 * RATE)] * 32767, -32768, 32767).astype(np.int16)
    turn = one_turn(daemon, np.concatenate([pcm, np.zeros(2 * RATE, np.int16)]), realtime=1.0)
    assert "fellow americans" in turn.reply.lower(), turn   # cat echoes the transcript
    expected = "answered at the pause" if declared else "transcribed at the pause"
    assert expected in caplog.text, caplog.text[-2000:]
