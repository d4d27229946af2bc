"""Speed and pitch on the real fallback voices: speed scales the duration and leaves the pitch
(F0 by librosa.pyin), pitch moves F0 by the semitones asked and leaves the duration; the result
still transcribes to the same words with the real Whisper, and sentence chunks do not click
where they meet. Every engine goes through the same phase vocoder (voiced.audio.effects);
Chatterbox's path is covered in test_tts_chatterbox.py."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.fixtures_stt import stt_settings, wer, whisper_stt  # noqa: F401  (fixtures)
from tests.test_tts_fallback import to_16k
from voiced.audio import effects
from voiced.config import TtsSettings
from voiced.engines.base import VoiceStyle
from voiced.engines.tts_espeak import EspeakEngine

librosa = pytest.importorskip("librosa", reason="librosa is not installed (pip install librosa)")

TEXT = "Please open the window and bring me a glass of water. The weather is lovely this morning."


def speech(chunks) -> tuple[np.ndarray, int]:
    return np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate


def median_f0(audio: np.ndarray, rate: int) -> float:
    f0, voiced, _ = librosa.pyin(audio, fmin=45, fmax=500, sr=rate, frame_length=2048, hop_length=512)
    assert voiced.sum() > 20, "too few voiced frames to estimate F0"
    return float(np.nanmedian(f0[voiced]))


def semitones(f_new: float, f_old: float) -> float:
    return 12 * np.log2(f_new / f_old)


@pytest.fixture(scope="module")
def espeak():
    engine = EspeakEngine(TtsSettings())
    engine.load()
    return engine


@pytest.fixture(scope="module")
def engines(piper_voice, espeak):
    return {"piper": piper_voice, "espeak": espeak}


@pytest.fixture(scope="module")
def plain(engines):
    """Each engine's plain rendering (the median-length one of three), its F0, and how much the
    engine's own renderings differ in length (Piper draws its durations at random)."""
    out = {}
    for name, engine in engines.items():
        renders = sorted((speech(list(engine.synthesize(TEXT))) for _ in range(3)), key=lambda r: len(r[0]))
        (audio, rate), lengths = renders[1], [len(a) for a, _ in renders]
        spread = (lengths[-1] - lengths[0]) / lengths[1]
        print(f"\n{name}: plain renderings differ in length by {spread:.3f}")
        out[name] = (audio, rate, median_f0(audio, rate), spread)
    return out


def length_tolerance(spread: float) -> float:
    """A change must stay within the engine's own render-to-render variation (three renders
    understate it: seen up to 9% for Piper against a 3% spread of three, and three equal
    lengths then a fourth 2-3% off in a CI run), plus 2%. The exact check is on one fixed
    rendering, below."""
    return 3 * spread + 0.04


@pytest.mark.parametrize("name", ["piper", "espeak"])
@pytest.mark.parametrize("speed", [0.75, 1.5])
def test_speed_scales_duration_and_keeps_pitch(engines, plain, name, speed):
    base, rate, base_f0, spread = plain[name]
    audio, _ = speech(list(engines[name].synthesize(TEXT, VoiceStyle(speed=speed))))
    ratio = len(base) / len(audio)
    shift = semitones(median_f0(audio, rate), base_f0)
    print(f"\n{name} speed {speed}: duration ratio {ratio:.3f} (asked {speed}), F0 moved {shift:+.2f} st")
    # Piper draws its phoneme durations at random (a few % per rendering); espeak-ng does not.
    # Its prosody too: a rendering's median F0 moved 0.9 st at speed 0.75 in a fresh-clone run,
    # the same spread the pitch test below allows Piper.
    assert ratio == pytest.approx(speed, rel=length_tolerance(spread))
    assert abs(shift) < (1.0 if name == "piper" else 0.75)


@pytest.mark.parametrize("name", ["piper", "espeak"])
@pytest.mark.parametrize("steps", [-4, 4])
def test_pitch_moves_f0_and_keeps_duration(engines, plain, name, steps):
    base, rate, base_f0, spread = plain[name]
    audio, _ = speech(list(engines[name].synthesize(TEXT, VoiceStyle(pitch=steps))))
    shift = semitones(median_f0(audio, rate), base_f0)
    ratio = len(audio) / len(base)
    print(f"\n{name} pitch {steps:+d}: F0 moved {shift:+.2f} st, duration ratio {ratio:.4f}")
    # Piper draws its durations and prosody at random: two renderings differ by a few % in
    # length and a few tenths of a semitone in F0 (the fixed-audio test below is exact)
    assert shift == pytest.approx(steps, abs=1.0 if name == "piper" else 0.5)
    assert ratio == pytest.approx(1.0, abs=length_tolerance(spread))


@pytest.mark.parametrize("steps", [-4, 4])
def test_pitch_shift_of_the_same_audio_keeps_its_length(plain, steps):
    """The vocoder path on one fixed Piper rendering: no engine randomness in the comparison."""
    base, rate, base_f0, _spread = plain["piper"]
    audio = effects.apply(base, rate, pitch=steps)
    shift = semitones(median_f0(audio, rate), base_f0)
    print(f"\npiper audio pitch {steps:+d}: F0 moved {shift:+.2f} st, {len(audio)} vs {len(base)} samples")
    assert len(audio) == len(base)
    # The F0 tracker's grid makes a true -4 read as -3.5 on some renderings (seen in CI runs):
    # allow one grid step beyond half a semitone.
    assert shift == pytest.approx(steps, abs=0.6)


@pytest.mark.parametrize("style", [VoiceStyle(speed=1.5), VoiceStyle(speed=0.75, pitch=-4), VoiceStyle(pitch=4)],
                         ids=["speed1.5", "speed0.75-pitch-4", "pitch+4"])
def test_changed_speech_still_transcribes(piper_voice, whisper_stt, style):  # noqa: F811
    chunks = list(piper_voice.synthesize(TEXT, style))
    heard = whisper_stt.transcribe(to_16k(chunks)).text
    print(f"\n{style.speed}x, {style.pitch:+g} st -> {heard!r}")
    assert wer(TEXT, heard) <= 0.2, heard


def test_chunk_boundaries_do_not_click(piper_voice):
    """Each processed sentence starts and ends at silence, so the joins have no step."""
    chunks = list(piper_voice.synthesize(TEXT, VoiceStyle(pitch=3, speed=1.2)))
    assert len(chunks) == 2
    rate = chunks[0].sample_rate
    for chunk in chunks:
        assert abs(chunk.audio[0]) < 1e-3 and abs(chunk.audio[-1]) < 1e-3
    joined = np.concatenate([c.audio for c in chunks])
    at = len(chunks[0].audio)
    window = joined[at - rate // 100: at + rate // 100]     # 10 ms either side of the join
    typical = np.percentile(np.abs(np.diff(joined)), 99)
    assert np.abs(np.diff(window)).max() <= typical, "a step at the chunk boundary"


def test_processing_cost_per_second(plain):
    audio, rate, _, _spread = plain["piper"]
    seconds = len(audio) / rate
    effects.apply(audio, rate, 1.1, 1.0)                     # librosa's first-call set-up
    costs = {}
    for label, speed, pitch in (("speed 1.5", 1.5, 0.0), ("pitch +4", 1.0, 4.0), ("both", 0.75, -4.0)):
        started = time.perf_counter()
        for _ in range(3):
            effects.apply(audio, rate, speed, pitch)
        costs[label] = (time.perf_counter() - started) / 3 / seconds * 1000
    print("\nms of processing per second of audio:", {k: round(v, 1) for k, v in costs.items()})
    assert max(costs.values()) < 200, costs                  # generous: a busy 2-core machine


def test_no_change_is_free_and_untouched():
    audio = np.random.default_rng(0).standard_normal(24_000).astype(np.float32) * 0.1
    assert effects.apply(audio, 24_000) is audio


def test_range_errors_name_the_field():
    with pytest.raises(ValueError, match=r"speed = 3 is out of range \(0.5 to 2\)"):
        effects.check_range("speed", 3, effects.SPEED_RANGE)
    assert effects.check_range("pitch", -6, effects.PITCH_RANGE) == -6.0
