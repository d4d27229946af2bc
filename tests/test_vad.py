"""VAD and end-pointing on real Silero weights and real espeak-ng speech, in 80 ms frames."""
from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures_audio import (FRAME, RATE, concat, espeak, frames, pink_noise,  # noqa: F401
                                  silence, speech_bounds, white_noise)
from voiced.audio.preroll import PreRoll
from voiced.config import VadSettings
from voiced.models.openwakeword_assets import SILERO_VAD
from voiced.vad import EndpointKind, Endpointer, EnergyVad, SileroVad, make_vad

pytestmark = pytest.mark.slow
FRAME_S = FRAME / RATE
SENTENCE = "what time is it, and what is the weather like today"


@pytest.fixture(params=["silero", "energy"])
def vad(request, oww_dir):
    return make_vad(VadSettings(engine=request.param), oww_dir)


def feed(ep: Endpointer, audio: np.ndarray) -> list:
    """Feed frames until a terminal event; returns all events."""
    events = []
    for frame in frames(audio):
        event = ep.process(frame)
        if event:
            events.append(event)
            if event.terminal:
                break
    return events


def test_end_after_trailing_silence(vad):
    lead = 0.4
    speech = espeak(SENTENCE)
    audio = concat(silence(lead), speech, silence(1.0))
    true_start, true_end = speech_bounds(audio)
    settings = VadSettings(silence_s=0.8)
    ep = Endpointer(vad, settings)
    preroll = espeak("jarvis")[:RATE // 4]
    ep.start(preroll)
    events = feed(ep, audio)

    assert [e.kind for e in events] == [EndpointKind.SPEECH_STARTED, EndpointKind.END], events
    started, end = events
    assert abs(started.speech_start_s - true_start) < 0.25, (started, true_start)
    assert abs(end.speech_end_s - true_end) < 0.25, (end, true_end)
    # Latency bookkeeping: decision - hangover is the end of speech; hangover is silence_s
    # rounded up to whole frames.
    assert end.time_s - end.hangover_s == pytest.approx(end.speech_end_s)
    assert settings.silence_s <= end.hangover_s < settings.silence_s + FRAME_S
    assert end.time_s <= len(audio) / RATE
    # The request audio is the pre-roll followed by every frame fed.
    got = ep.audio()
    assert len(got) == len(preroll) + round(end.time_s * RATE)
    assert np.array_equal(got[:len(preroll)], preroll)
    fed = got[len(preroll):]
    assert np.array_equal(fed, audio[:len(fed)])
    assert ep.preroll_s == pytest.approx(len(preroll) / RATE)
    with pytest.raises(RuntimeError):
        ep.process(silence(FRAME_S))


def test_feed_reports_only_the_finished_request(vad):
    audio = concat(silence(0.3), espeak("turn off the lights"), silence(1.5))
    ep = Endpointer(vad, VadSettings(silence_s=0.6))
    ep.start()
    events = feed(ep, audio)
    ep.start()
    results = [r for f in frames(audio) if ep.active and (r := ep.feed(f)) is not None]
    assert len(results) == 1
    result = results[0]
    assert result.event == events[-1] and result.kind == "end"
    assert result.samples_since_speech_end == round(events[-1].hangover_s * RATE)
    assert np.array_equal(result.audio, ep.audio())


@pytest.mark.parametrize("background", ["digital silence", "quiet noise"])
def test_no_speech_at_timeout(vad, background):
    # Silero ignores even loud room noise; the energy VAD only quiet noise (below its -50 dBFS floor).
    level = -30 if vad.name == "silero" else -65
    audio = silence(6.0) if background == "digital silence" else pink_noise(6.0, dbfs=level, seed=3)
    ep = Endpointer(vad, VadSettings(no_speech_timeout_s=2.0))
    ep.start()
    events = feed(ep, audio)
    assert [e.kind for e in events] == [EndpointKind.NO_SPEECH], events
    assert 2.0 <= events[0].time_s < 2.0 + FRAME_S
    assert not ep.speech_heard and events[0].speech_start_s is None


def test_max_length_on_continuous_speech(vad):
    talk = espeak("one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, "
                  "thirteen, fourteen, fifteen, sixteen", speed=190)
    assert len(talk) / RATE > 5.0
    ep = Endpointer(vad, VadSettings(max_s=3.0, silence_s=0.8))
    ep.start()
    events = feed(ep, concat(silence(0.2), talk))
    assert [e.kind for e in events] == [EndpointKind.SPEECH_STARTED, EndpointKind.MAX_LENGTH], events
    assert 3.0 <= events[-1].time_s < 3.0 + FRAME_S
    assert len(ep.audio()) == round(events[-1].time_s * RATE)


def test_restart_gives_the_same_decisions(vad):
    # Audio time, not wall time: the same clip yields the same events, however fast it is fed.
    audio = concat(silence(0.3), espeak("turn off the lights"), silence(1.5))
    ep = Endpointer(vad, VadSettings(silence_s=0.6))
    ep.start()
    first = feed(ep, audio)
    ep.start()
    second = feed(ep, audio)
    assert first == second and first[-1].kind is EndpointKind.END


def test_silero_probabilities(oww_dir):
    vad = SileroVad(oww_dir / SILERO_VAD)
    speech = espeak(SENTENCE)
    probs = [vad.probability(f) for f in frames(concat(silence(0.5), speech, silence(1.0)))]
    lead, n_speech = round(0.5 / FRAME_S), len(speech) // FRAME
    inside = probs[lead + 1: lead + n_speech - 1]
    assert np.mean(np.array(inside) >= 0.5) > 0.8, np.round(inside, 2)
    assert max(probs[:lead]) < 0.2 and max(probs[-8:]) < 0.2
    vad.reset()
    noise = [vad.probability(f) for f in frames(pink_noise(3.0, dbfs=-30, seed=4))]
    assert max(noise) < 0.5


def test_silero_rejects_other_onnx_models(oww_dir):
    with pytest.raises(ValueError, match="Silero"):
        SileroVad(oww_dir / "hey_jarvis_v0.1.onnx")


def test_energy_vad_sanity():
    vad = EnergyVad()
    assert all(vad.probability(f) == 0.0 for f in frames(silence(1.0)))
    assert max(vad.probability(f) for f in frames(white_noise(1.0, dbfs=-70, seed=5))) < 0.5
    speech = espeak(SENTENCE)
    probs = np.array([vad.probability(f) for f in frames(speech)])
    assert np.mean(probs >= 0.5) > 0.7, np.round(probs, 2)
    # Float input in [-1, 1] (the engines' currency) is accepted and scored alike.
    assert vad.probability(speech[8000:9280].astype(np.float32) / 32767) > 0.5


def test_energy_vad_learns_steady_noise():
    vad = EnergyVad()
    probs = [vad.probability(f) for f in frames(pink_noise(12.0, dbfs=-40, seed=6))]
    assert probs[0] > 0.5           # unknown loud background looks like speech at first...
    assert max(probs[-25:]) < 0.5   # ...until the floor has risen to it


def test_preroll_keeps_the_last_seconds():
    pre = PreRoll(0.3)
    assert len(pre.audio()) == 0
    stream = np.arange(10 * FRAME, dtype=np.int64).astype(np.int16)
    for f in frames(stream):
        pre.append(f)
    want = stream[-round(0.3 * RATE):]
    assert np.array_equal(pre.audio(), want)
    assert pre.duration_s == pytest.approx(0.3)
    pre.clear()
    assert len(pre) == 0 and pre.audio().size == 0
    short = PreRoll(1.0)
    short.append(stream[:FRAME])
    assert np.array_equal(short.audio(), stream[:FRAME])
    none = PreRoll(0.0)
    none.append(stream[:FRAME])
    assert none.audio().size == 0


def test_preroll_copies_frames():
    pre = PreRoll(0.2)
    buf = np.ones(FRAME, dtype=np.int16)
    pre.append(buf)
    buf[:] = 7      # capture reusing its buffer must not change what was kept
    assert np.all(pre.audio() == 1)
