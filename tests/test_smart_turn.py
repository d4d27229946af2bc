"""Smart Turn v3.2 end-of-turn model: real weights (fetched from the pinned pipecat-ai wheel) on
the real JFK recording, its Whisper features against transformers, and `voiced models`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures_audio import silero_segments

from voiced.config import Settings
from voiced.end_of_turn import SmartTurn, whisper_features
from voiced.engines.base import FatalEngineError
from voiced.models import smart_turn_assets as assets
from voiced.models.openwakeword_assets import SILERO_VAD

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"
RATE = 16_000
INTO_PAUSE_S = 0.2   # score a pause once it has lasted this long, as the daemon would


@pytest.fixture(scope="module")
def model_path(smart_turn_model) -> Path:
    return smart_turn_model


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    audio, rate = sf.read(DATA / "jfk_16k.flac", dtype="int16")
    assert rate == RATE
    return audio


def test_pauses_mid_sentence_vs_end_of_turn(model_path, jfk, oww_dir):
    """JFK: "And so my fellow Americans | ask not | what your country can do for you, | ask what you
    can do for your country." Clause-internal pauses must not read as a finished turn."""
    segments = silero_segments(jfk, oww_dir / SILERO_VAD)
    pauses = [(a_end, b_start) for (_, a_end), (b_start, _) in zip(segments, segments[1:])]
    print("speech:", [(round(s, 2), round(e, 2)) for s, e in segments])
    assert len(pauses) == 3, f"expected 3 inner pauses >= 0.5 s in jfk, got {pauses}"
    assert segments[-1][1] + INTO_PAUSE_S <= len(jfk) / RATE

    model = SmartTurn(model_path)
    cuts = [start + INTO_PAUSE_S for start, _ in pauses] + [segments[-1][1] + INTO_PAUSE_S]
    scores, times = [], []
    for cut in cuts:
        scores.append(model.probability(jfk[:int(cut * RATE)]))
        times.append(model.last_ms)
    for (start, end), p, ms in zip(pauses + [(segments[-1][1], None)], scores, times):
        print(f"pause at {start:5.2f} s ({'end' if end is None else f'{end - start:.2f} s'}): "
              f"p={p:.2f}  {ms:.0f} ms")
    print(f"load {model.load_s * 1000:.0f} ms, mean {np.mean(times):.0f} ms per call")

    first, ask_not, for_you, end = scores
    # "ask not | what ..." and "... for you, | ask what ...": clearly unfinished.
    assert ask_not < 0.5 and for_you < 0.5, scores
    assert end >= 0.5, scores
    # "And so my fellow Americans |" (a vocative, falling pitch, 1.1 s pause) sounds finished to
    # the model (p ~ 0.95 here): reported, not asserted - prosody alone cannot know the rest.
    assert 0.0 <= first <= 1.0
    assert model.name == "smart-turn-v3.2" and model.load_s > 0


def test_short_and_long_inputs(model_path, jfk):
    model = SmartTurn(model_path)
    float_p = model.probability(jfk.astype(np.float32) / 32768.0)
    assert abs(float_p - model.probability(jfk)) < 1e-3       # int16 and float32 are the same audio
    assert 0.0 <= model.probability(jfk[:RATE // 10]) <= 1.0    # 0.1 s: zero-padded at the start
    assert model.last_ms > 0


def test_features_match_transformers(jfk):
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=8)
    for audio in (jfk[:3 * RATE], jfk):    # shorter than 8 s (padded) and longer (last 8 s)
        window = (audio[-8 * RATE:].astype(np.float32) / 32768.0)
        window = np.pad(window, (8 * RATE - len(window), 0))
        ref = extractor(window, sampling_rate=RATE, padding="max_length", max_length=8 * RATE,
                        truncation=True, do_normalize=True, return_tensors="np").input_features[0]
        mine = whisper_features(audio)
        assert mine.shape == (80, 800) and mine.dtype == np.float32
        np.testing.assert_allclose(mine, ref, atol=1e-4)


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "smart-turn-v3.2-cpu.onnx"
    with pytest.raises(FatalEngineError, match="voiced models fetch") as info:
        SmartTurn(missing)
    assert str(missing) in str(info.value)

    empty = Settings(models={"dir": str(tmp_path)})
    assert assets.smart_turn_path(empty) is None
    row = assets.status(empty)
    assert not row.ready and "voiced models fetch" in row.detail
    (tmp_path / assets.SUBDIR).mkdir()
    (tmp_path / assets.SUBDIR / assets.ONNX).write_bytes(b"not a model")
    assert "altered" in assets.status(empty).detail and assets.smart_turn_path(empty) is None


def test_user_supplied_path(model_path, tmp_path):
    base = Settings(models={"dir": str(tmp_path)})
    # [vad] smart_turn_model: "" = the fetched file, else a path (read with getattr).
    custom = base.model_copy(update={"vad": base.vad.model_copy(update={"smart_turn_model": str(model_path)})})
    assert assets.smart_turn_path(custom) == model_path
    assert assets.status(custom).ready and "local file" in assets.status(custom).source
    gone = base.model_copy(update={"vad": base.vad.model_copy(update={"smart_turn_model": str(tmp_path / "x.onnx")})})
    assert not assets.fetch(gone, lambda _msg: None).ready


def test_models_listing_names_origin(model_path, capsys):
    from voiced.models.registry import print_table, status_all
    from voiced.config import models_dir

    settings = Settings()
    messages: list[str] = []
    assert assets.fetch(settings, messages.append).ready and "ready" in messages[-1]   # idempotent
    rows = {r.name: r for r in status_all(settings)}
    row = rows["smart-turn"]
    assert row.ready and row.source == "pipecat-ai 1.14.0 wheel" and row.model == str(model_path)
    print_table(list(rows.values()), models_dir(settings))
    out = capsys.readouterr().out
    assert "smart-turn" in out and "pipecat-ai 1.14.0 wheel" in out
    folder = assets.assets_dir(settings)
    assert "BSD 2-Clause" in (folder / assets.LICENSE).read_text()
    assert '"sha256": "' + assets.ONNX_SHA256 in (folder / assets.MANIFEST).read_text()
