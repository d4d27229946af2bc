"""The turn state machine: allowed transitions, turn timings, listeners."""
from __future__ import annotations

import pytest

from voiced.pipeline import InvalidTransition, Pipeline, PipelineState as S


def test_full_turn_and_timings():
    p = Pipeline()
    seen = []
    p.subscribe(lambda old, new, turn: seen.append((old, new)))
    p.to(S.IDLE)
    p.begin_turn("wake:hey_jarvis")
    p.to(S.LISTENING)
    p.mark("end_of_speech", at=10.0)
    p.to(S.TRANSCRIBING)
    p.mark("transcript", at=10.5, transcript="what time is it")
    p.to(S.THINKING)
    p.mark("reply", at=10.6, reply="It's noon.")
    p.to(S.SPEAKING)
    p.mark("first_audio", at=10.9)
    turn = p.end_turn("answered")
    p.to(S.IDLE)
    assert [n for _, n in seen] == [S.IDLE, S.LISTENING, S.TRANSCRIBING, S.THINKING, S.SPEAKING, S.IDLE]
    d = turn.durations()
    assert d["stt"] == pytest.approx(0.5) and d["respond"] == pytest.approx(0.1)
    assert d["voice_to_voice"] == pytest.approx(0.9)
    assert turn.transcript == "what time is it" and turn.reply == "It's noon."
    assert p.turns[-1] is turn and p.current is None


@pytest.mark.parametrize("path", [[S.IDLE, S.THINKING], [S.IDLE, S.LISTENING, S.SPEAKING], [S.STOPPING, S.IDLE]])
def test_forbidden_transitions_raise(path):
    p = Pipeline()
    with pytest.raises(InvalidTransition):
        for state in path:
            p.to(state)


def test_turn_ids_increase_and_history_is_bounded():
    p = Pipeline(keep_turns=3)
    for _ in range(5):
        p.begin_turn("api")
        p.end_turn("no speech")
    assert [t.id for t in p.turns] == [3, 4, 5]
