"""End of turn: false cut-offs on real human speech, and voice-to-voice per mode.

Cut-offs (offline, in audio time, deterministic): each real recording (jfk plus the corpus in
tests/data/speech, fetched by scripts/fetch_speech_samples.py) runs through the real Silero
VAD end-pointer in each mode; after every decision the end-pointer starts again, as the daemon
would after a turn. A decision inside a pause labelled mid-sentence is a false cut-off; one at
a sentence end or after the last word is a right one, and its delay after the last word is the
latency that mode pays. Synthetic voices cannot be used here: they end every phrase with final
intonation, which is what the model listens for.

Voice-to-voice (the real daemon on virtual devices, bench/e2e.py) is measured per mode in
the same run, one daemon per mode, so the ratios compare like with like.
"""
from __future__ import annotations

import json

import numpy as np

from .common import RATE, TESTS, Skip, summary

FRAME = 1280
CORPUS = TESTS / "data" / "speech"
THINK_S = 1.0     # a recording that stops mid-sentence gets this pause: the speaker thinking
END_PAD_S = 2.5   # after a finished sentence: silence, long enough for every mode to decide
# Each mode as [vad] settings; the e2e runs pass them as VOICED_VAD__* variables.
MODES = {
    "silence 0.8 s": {"end_of_turn": "silence", "speculate": False},
    "semantic": {"end_of_turn": "semantic", "early_transcribe_s": 0.0},
    "semantic + speculation": {"end_of_turn": "semantic"},
}
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)      # the model's cut-off curve
SILENCES = (0.5, 0.8, 1.2)             # the fixed-silence curve


def recordings() -> list[dict]:
    """[{name, audio (int16, with the pause after it), pauses: [(start, end, label)], last_word_s}]
    of real speech: tests/data/speech/manifest.json (scripts/label_pauses.py) or jfk alone.
    A recording that stops mid-sentence ("He was not an ill-disposed young man,") is followed by
    a THINK_S pause, labelled mid-sentence: ending the turn there cuts the speaker off."""
    import soundfile as sf

    manifest = CORPUS / "manifest.json"
    entries = json.loads(manifest.read_text())["recordings"] if manifest.is_file() else [_jfk_entry()]
    out = []
    for e in entries:
        path = (CORPUS / e["file"]).resolve()
        if not path.is_file():
            raise Skip(f"{path} is missing: run scripts/fetch_speech_samples.py")
        audio, rate = sf.read(path, dtype="int16")
        if rate != RATE or audio.ndim != 1:
            raise Skip(f"{path}: expected 16 kHz mono, got {rate} Hz, shape {audio.shape}")
        pauses = [(p["start"], p["end"], p["label"]) for p in e["pauses"]]
        end = e["speech_end_s"]
        if e["ends"] == "mid_sentence":
            audio = np.concatenate([audio[:int(end * RATE)], np.zeros(int(THINK_S * RATE), np.int16)])
            pauses.append((end, end + THINK_S, "mid_sentence"))
            last = float("inf")
        else:
            audio = np.concatenate([audio, np.zeros(int(END_PAD_S * RATE), np.int16)])
            last = end
        out.append({"name": path.name, "audio": audio, "pauses": pauses, "last_word_s": last})
    return out


def _jfk_entry() -> dict:
    """jfk's three pauses are all inside its one sentence (found by Silero in the tests)."""
    return {"file": "../jfk_16k.flac", "speech_end_s": 10.46, "ends": "sentence_end",
            "pauses": [{"start": 2.21, "end": 3.30, "label": "mid_sentence"},
                       {"start": 4.38, "end": 5.41, "label": "mid_sentence"},
                       {"start": 7.62, "end": 8.19, "label": "mid_sentence"}]}


def decisions(audio: np.ndarray, make_endpointer, speculation: dict | None = None) -> list[dict]:
    """Every end of turn the end-pointer decides over the whole recording. `speculation`
    counts, as the listener would, answers started at pauses: used (the turn ended at that
    pause) or discarded (the speaker went on)."""
    ep, offset, out, key = make_endpointer(), 0.0, [], None
    ep.start()
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        result = ep.feed(audio[i:i + FRAME])
        if speculation is not None and result is None and ep.speech_heard:
            v = ep.settings
            start_s = v.pause_s if ep.semantic else v.early_transcribe_s
            if start_s > 0 and ep.silence_s >= start_s and key != ep.speech_end_s:
                if key is not None:
                    speculation["discarded"] += 1
                key = ep.speech_end_s
                speculation["started"] += 1
        if result is None:
            continue
        now = (i + FRAME) / RATE
        if result.event.kind.value == "end":
            out.append({"at_s": now, "speech_end_s": offset + result.event.speech_end_s, "by": result.event.by,
                        "model_ms": [j.ms for j in ep.judgements]})
        if speculation is not None and key is not None:
            speculation["used" if key == result.event.speech_end_s else "discarded"] += 1
        ep.start()
        offset, key = now, None
    return out


def _classify(d: dict, rec: dict) -> tuple[str, float | None]:
    """What a decision cut: ("mid"/"end", delay after the last word) by where it fell."""
    t = d["at_s"]
    if t >= rec["last_word_s"]:
        return "end", t - rec["last_word_s"]
    for start, end, label in rec["pauses"]:
        if start <= t <= end + 0.05:
            return ("mid", None) if label == "mid_sentence" else ("end", t - start)
    return "mid", None   # inside speech or an unlabelled gap: the speaker was not done


def cutoffs(settings, vad_overrides: dict, recs: list[dict], turn_model=None) -> dict:
    from voiced.models.openwakeword_assets import SILERO_VAD, assets_dir
    from voiced.vad import Endpointer, SileroVad

    vad_settings = settings.vad.model_copy(update={"max_s": 120.0, "no_speech_timeout_s": 60.0, **vad_overrides})
    silero = assets_dir(settings) / SILERO_VAD
    semantic = vad_settings.end_of_turn == "semantic"
    mid_pauses = sum(1 for r in recs for s, e, label in r["pauses"]
                     if label == "mid_sentence" and e - s >= vad_settings.pause_s)
    ends = sum((r["last_word_s"] != float("inf")) + sum(1 for *_p, label in r["pauses"] if label == "sentence_end")
               for r in recs)
    cuts, delays, model_ms, per = 0, [], [], {}
    spec = {"started": 0, "used": 0, "discarded": 0}
    for rec in recs:
        got = decisions(rec["audio"], lambda: Endpointer(SileroVad(silero), vad_settings,
                                                         turn_model=turn_model if semantic else None), spec)
        kinds = [_classify(d, rec) for d in got]
        cuts += sum(k == "mid" for k, _ in kinds)
        delays += [x for k, x in kinds if k == "end"]
        model_ms += [ms for d in got for ms in d["model_ms"]]
        per[rec["name"]] = [f"{k}@{d['at_s']:.2f}" for (k, _), d in zip(kinds, got)]
    return {"mid_sentence_pauses": mid_pauses, "false_cutoffs": cuts,
            "false_cutoff_pct": round(100 * cuts / mid_pauses, 1) if mid_pauses else None,
            "sentence_ends": ends, "ends_found": len(delays),
            "end_delay_s": summary(delays), "model_ms": summary(model_ms), "decisions": per,
            "speculations": spec, "turns": sum(len(d) for d in per.values())}


def bench_cutoffs(settings) -> dict:
    from voiced.end_of_turn import SmartTurn
    from voiced.models.smart_turn_assets import smart_turn_path

    path = smart_turn_path(settings)
    if path is None:
        raise Skip("the Smart Turn model is missing: run `voiced models fetch`")
    model, recs = SmartTurn(path), recordings()
    out = {"recordings": [{"name": r["name"], "seconds": round(len(r["audio"]) / RATE, 1),
                           "mid_sentence_pauses": sum(1 for *_x, lb in r["pauses"] if lb == "mid_sentence")}
                          for r in recs]}
    out["silence"] = {f"{s:g} s": cutoffs(settings, {"end_of_turn": "silence", "silence_s": s}, recs)
                      for s in SILENCES}
    out["semantic"] = {f"p >= {t:g}": cutoffs(settings, {"end_of_turn": "semantic", "turn_threshold": t}, recs, model)
                       for t in THRESHOLDS}
    return out


def bench_modes(settings, turns: int, idle_s: float, config: str | None = None) -> dict:
    """Voice-to-voice of the real daemon in each mode, one after the other in this run."""
    from .e2e import bench_e2e

    out = {}
    for name, vad in MODES.items():
        env = {f"VOICED_VAD__{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in vad.items()}
        try:
            out[name] = bench_e2e(settings, turns, idle_s, config, barge_trials=0, extra_env=env)
        except Skip as exc:
            out[name] = {"skipped": str(exc)}
        except Exception as exc:  # noqa: BLE001 - keep the other modes' numbers
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
