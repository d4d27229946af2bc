"""Wake word detection on real openWakeWord models and real espeak-ng speech, in 80 ms frames."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fixtures_audio import (RATE, concat, espeak, frames, pink_noise, silence,  # noqa: F401
                                  speech_bounds, white_noise)
from voiced.config import WakeSettings
from voiced.models import openwakeword_assets as assets
from voiced.triggers.wakeword import Detection, WakeWordDetector

pytestmark = pytest.mark.slow


def detector(oww_dir, **wake) -> WakeWordDetector:
    return WakeWordDetector(WakeSettings(**wake), oww_dir)


def run(det: WakeWordDetector, audio: np.ndarray) -> tuple[list[Detection], dict[str, float], list[dict]]:
    """Feed a clip frame by frame: (detections, peak score per model, per-frame scores)."""
    found, peaks, per_frame = [], {}, []
    for frame in frames(audio):
        hit = det.process(frame)
        per_frame.append(dict(det.scores))
        for name, score in det.scores.items():
            peaks[name] = max(peaks.get(name, 0.0), score)
        if hit:
            found.append(hit)
    return found, peaks, per_frame


def padded(speech: np.ndarray, before: float = 1.0, after: float = 2.0) -> np.ndarray:
    return concat(silence(before), speech, silence(after))


@pytest.mark.parametrize("voice", ["en-us", "en-gb"])
def test_hey_jarvis_fires_exactly_once(oww_dir, voice):
    det = detector(oww_dir, models=("hey_jarvis",))
    audio = padded(espeak("hey jarvis", voice))
    found, peaks, _ = run(det, audio)
    assert len(found) == 1, f"{voice}: detections {found}, peaks {peaks}"
    hit = found[0]
    assert hit.model == "hey_jarvis" and hit.score >= det.settings.threshold
    start, end = speech_bounds(audio)
    # Fires once the phrase has been heard: after it starts, at most a second after it ends.
    assert start < hit.audio_time_s <= end + 1.0, (hit, start, end)


NEGATIVES = {
    "question": lambda: padded(espeak("what time is it")),
    "sentence": lambda: padded(espeak("The quick brown fox jumps over the lazy dog, "
                                      "and then it runs back into the forest before dark.", "en-gb")),
    "similar words": lambda: padded(espeak("hey there, how are you doing")),
    "digital silence": lambda: silence(5.0),
    "white noise": lambda: white_noise(5.0, dbfs=-25, seed=1),
    "pink noise": lambda: pink_noise(5.0, dbfs=-25, seed=2),
}


@pytest.mark.parametrize("case", list(NEGATIVES))
def test_other_audio_does_not_fire(oww_dir, case):
    det = detector(oww_dir, models=("hey_jarvis", "alexa"))
    found, peaks, _ = run(det, NEGATIVES[case]())
    assert found == [], f"{case}: false detections {found}, peaks {peaks}"
    assert max(peaks.values()) < det.settings.threshold


def test_refractory_counts_audio_time(oww_dir):
    phrase = espeak("hey jarvis")
    audio = padded(concat(phrase, silence(0.6), phrase))
    # With no refractory period each phrase fires on its own.
    found, _, _ = run(detector(oww_dir, refractory_s=0.0), audio)
    assert len(found) == 2, found
    spacing = found[1].audio_time_s - found[0].audio_time_s
    assert abs(spacing - (len(phrase) / RATE + 0.6)) < 0.3, spacing

    # Second phrase inside the refractory period: one detection.
    once, _, _ = run(detector(oww_dir, refractory_s=spacing + 0.5), audio)
    assert [d.audio_time_s for d in once] == [found[0].audio_time_s]

    # Refractory shorter than the spacing: both fire. The clip is fed far faster than real
    # time, so a wall-clock refractory period would have swallowed the second one.
    twice, _, _ = run(detector(oww_dir, refractory_s=max(spacing - 0.4, 0.1)), audio)
    assert [d.audio_time_s for d in twice] == [d.audio_time_s for d in found]


def test_trigger_level_needs_consecutive_frames(oww_dir):
    audio = padded(espeak("hey jarvis"))
    _, _, per_frame = run(detector(oww_dir), audio)
    over = [s["hey_jarvis"] >= 0.5 for s in per_frame]
    first = over.index(True)
    run_len = next((i for i, v in enumerate(over[first:]) if not v), len(over) - first)
    assert run_len >= 2, f"need a run of high scores to test trigger_level, got {run_len}"

    level = min(run_len, 10)
    found, _, _ = run(detector(oww_dir, trigger_level=level), audio)
    assert len(found) == 1
    assert found[0].audio_time_s == pytest.approx((first + level) * 0.08)
    if run_len < 10:
        missed, _, _ = run(detector(oww_dir, trigger_level=run_len + 1), audio)
        assert missed == []


def test_reset_forgets_buffered_audio(oww_dir):
    audio = padded(espeak("hey jarvis"), after=0.0)
    chunks = list(frames(audio))
    found, _, _ = run(detector(oww_dir), audio)
    fire_index = round(found[0].audio_time_s / 0.08) - 1
    head = concat(*chunks[:fire_index])   # everything before the frame that fired
    tail = silence(2.0)

    kept = detector(oww_dir)
    run(kept, head)
    late, _, _ = run(kept, tail)
    assert len(late) == 1, "the buffered phrase should still fire on the silence after it"

    cleared = detector(oww_dir)
    run(cleared, head)
    cleared.reset()
    assert cleared.scores == {}
    after_reset, peaks, _ = run(cleared, tail)
    assert after_reset == [], f"old audio fired after reset(): {after_reset}, peaks {peaks}"


@pytest.mark.parametrize("voice", ["en-us", "en-gb"])
def test_alexa_model(oww_dir, voice):
    found, peaks, _ = run(detector(oww_dir, models=("alexa",)), padded(espeak("alexa", voice)))
    assert [d.model for d in found] == ["alexa"], peaks
    jarvis, _, _ = run(detector(oww_dir, models=("alexa",)), padded(espeak("hey jarvis")))
    assert jarvis == []


def test_several_models_at_once(oww_dir):
    det = detector(oww_dir, models=("hey jarvis", "alexa"), refractory_s=2.0)
    assert det.names == ("hey_jarvis", "alexa")
    audio = padded(concat(espeak("hey jarvis"), silence(3.0), espeak("alexa", "en-gb")))
    found, _, per_frame = run(det, audio)
    assert [d.model for d in found] == ["hey_jarvis", "alexa"]
    assert found[0].audio_time_s < found[1].audio_time_s
    assert set(per_frame[-1]) == {"hey_jarvis", "alexa"}
    assert all(0.0 <= v <= 1.0 for s in per_frame for v in s.values())


def test_float_frames_score_like_int16(oww_dir):
    audio = padded(espeak("hey jarvis"))
    as_int, _, _ = run(detector(oww_dir), audio)
    det = detector(oww_dir)
    as_float = [h for f in frames(audio) if (h := det.process(f.astype(np.float32) / 32767))]
    assert [d.audio_time_s for d in as_float] == [d.audio_time_s for d in as_int]


def test_resolve_wake_model_names(oww_dir):
    jarvis = assets.resolve_wake_model("hey_jarvis", oww_dir)
    assert jarvis.name == "hey_jarvis_v0.1.onnx"
    for spelling in ("hey jarvis", "Hey-Jarvis", "hey_jarvis_v0.1", "hey_jarvis_v0.1.onnx", str(jarvis)):
        assert assets.resolve_wake_model(spelling, oww_dir) == jarvis
    with pytest.raises(assets.UnknownWakeModel) as err:
        assets.resolve_wake_model("okay_computer", oww_dir)
    for name in ("hey_jarvis", "alexa", "hey_mycroft"):
        assert name in str(err.value)
    assert "melspectrogram" not in str(err.value)


def test_manifest_matches_files(oww_dir):
    manifest = json.loads((oww_dir / assets.MANIFEST).read_text())["files"]
    for name in ("melspectrogram.onnx", "embedding_model.onnx", "silero_vad.onnx", "hey_jarvis_v0.1.onnx"):
        entry = manifest[name]
        assert entry["sha256"] == assets.sha256_file(oww_dir / name)
        assert entry["origin"] and entry["version"]


def test_unknown_model_is_a_clear_error(oww_dir):
    from voiced.triggers.wakeword import WakeWordError
    with pytest.raises(WakeWordError, match="available"):
        detector(oww_dir, models=("okay_computer",))
