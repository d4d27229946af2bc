"""`voiced bench` in its quickest form: the real VAD and the real Piper voice, one repeat.

A benchmark is not a timed unit test: this checks that the JSON has every field with
plausible positive numbers, never how fast anything is.
"""
from __future__ import annotations

import json

import pytest

from voiced.bench import run_bench
from voiced.bench.run import format_table

pytestmark = pytest.mark.slow


def positive(summary: dict) -> bool:
    return summary["n"] >= 1 and summary["median"] is not None and summary["median"] > 0 \
        and summary["p95"] >= summary["min"] > 0


def test_quick_bench_vad_and_piper_writes_json(settings, tmp_path):
    out = tmp_path / "bench.json"
    results = run_bench(settings, quick=True, out=out, parts=["vad", "tts"], repeats=1, tts_engines=["piper"],
                        echo=lambda *a, **k: None)
    saved = json.loads(out.read_text())
    assert saved["meta"]["parts"] == ["vad", "tts"] and saved["meta"]["quick"] is True
    assert "ratios" in saved["meta"]["note"]

    vad = saved["vad"]
    assert "error" not in vad and not vad["failures"], vad
    assert positive(vad["end_detect_delay_s"])
    # The decision cannot come before the configured trailing silence has been heard.
    assert vad["end_detect_delay_s"]["min"] >= settings.vad.silence_s - 0.1
    assert positive(vad["frame_compute_ms"])

    piper = saved["tts"]["piper"]
    assert "error" not in piper, piper
    assert piper["repeats"] == 1 and piper["device"] == "cpu"
    assert set(piper["replies"]) == {"1_sentences", "3_sentences", "8_sentences"}
    for name, row in piper["replies"].items():
        for key in ("voiced_first_audio_s", "voiced_total_s", "naive_first_audio_s"):
            assert positive(row[key]), (name, key, row[key])
        assert row["audio_s"] > 0 and row["rtf"] > 0 and row["naive_over_voiced_first_audio"] > 0
        # Streaming: the first chunk is never later than the whole reply.
        assert row["voiced_first_audio_s"]["median"] <= row["voiced_total_s"]["median"]
    assert piper["replies"]["8_sentences"]["audio_s"] > piper["replies"]["1_sentences"]["audio_s"]
    assert piper["first_audio_8_over_1"] > 0

    table = format_table(results)
    assert "vad: end-of-speech detection delay" in table and "tts piper 8 sent." in table
    assert str(out) in table


def test_unknown_part_is_refused(settings, tmp_path):
    with pytest.raises(ValueError, match="unknown bench parts"):
        run_bench(settings, quick=True, out=tmp_path / "x.json", parts=["vad", "gpu"])


def test_stt_bench_times_both_back_ends_and_the_naive_path(fast_whisper_settings):
    from voiced.bench.run import _stt_rows
    from voiced.bench.speech import ENGINES, STT_PATHS, bench_stt

    x = bench_stt(fast_whisper_settings, repeats=1, lengths=(1,))
    row = x["lengths"]["1s"]
    for path in STT_PATHS:
        assert positive(row[f"{path.replace('-', '_')}_s"]), path
        assert row["rtf"][path] > 0
    assert row["transformers_over_faster_whisper"] > 0 and row["naive_over_transformers"] > 0
    for engine in ENGINES:
        probe = x["engines"][engine]
        assert "error" not in probe, probe
        assert probe["start_s"] > 0 and probe["peak_rss_mb"] >= probe["rss_loaded_mb"] > 50
        assert x["silence_3s"][engine]["rejected"] == 1          # silence is timed only when rejected
        assert x["wer_jfk"][engine] <= 0.05 and x["wer_sentences"][engine] <= 0.3, (x["wer_jfk"], x["wer_sentences"])
    assert x["default_engine"] == "faster-whisper"                 # auto, with both weights prepared
    rows = []
    _stt_rows(x, lambda what, s, unit="s", note="": rows.append(what))
    assert "stt 1s: transformers / faster-whisper" in rows


def test_end_of_turn_cutoffs_on_real_speech(settings, smart_turn_model):
    """The cut-off part of `voiced bench --parts turn` on the real recordings: each mode's
    decisions are classified against the labelled pauses, and the curves are printed."""
    from voiced.bench.end_of_turn import bench_cutoffs

    r = bench_cutoffs(settings)
    assert r["recordings"] and all(rec["seconds"] > 1 for rec in r["recordings"])
    for family in ("silence", "semantic"):
        for setting, c in r[family].items():
            print(f"{family} {setting}: false cut-offs {c['false_cutoffs']}/{c['mid_sentence_pauses']}, "
                  f"ends {c['ends_found']}/{c['sentence_ends']}, delay {c['end_delay_s']['median']}")
            assert c["mid_sentence_pauses"] > 0 and c["ends_found"] >= 1, (family, setting, c)
            assert len(c["decisions"]) == len(r["recordings"])   # a mid-sentence stop may rightly have none
    # A longer fixed silence cuts less and answers later: the curve is monotonic.
    s = r["silence"]
    assert s["0.5 s"]["false_cutoffs"] >= s["0.8 s"]["false_cutoffs"] >= s["1.2 s"]["false_cutoffs"]
    assert r["semantic"]["p >= 0.5"]["model_ms"]["n"] > 0
