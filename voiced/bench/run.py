"""`voiced bench`: run the parts, print a table, write JSON.

    voiced bench [--quick] [--parts wake,vad,stt,tts,e2e] [--out FILE] [--chatterbox-random DIR]

Also runnable as `python -m voiced.bench.run` with the same flags.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as the daemon's CLI does, before torch loads

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from .common import Skip

PARTS = ("wake", "vad", "stt", "tts", "e2e", "turn", "accuracy")
DEFAULT_PARTS = PARTS[:-1]   # accuracy (~10 min: a set of 700 files, a daemon per language) only when asked
NOISE_NOTE = ("Numbers are noisy on a small shared CPU: compare the ratios (naive / voiced, measured "
              "side by side in the same run) more than the absolute figures.")


def plan(quick: bool) -> dict:
    """Repeats and durations per part: --quick finishes in under ~3 minutes on 2 cores."""
    if quick:
        return {"wake": 4, "idle_s": 5, "vad": 4, "stt": 2, "stt_lengths": (1, 5, 15), "tts": 2,
                "tts_budget_s": 60, "e2e_turns": 2, "e2e_idle_s": 3, "accuracy_requests": 4}
    return {"wake": 12, "idle_s": 20, "vad": 12, "stt": 5, "stt_lengths": (1, 5, 15, 30), "tts": 5,
            "tts_budget_s": 240, "e2e_turns": 5, "e2e_idle_s": 10, "accuracy_requests": 8}


def _meta(settings, quick: bool, parts: list[str]) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if cuda else None, "torch_threads": torch.get_num_threads(),
            "load_avg_start": list(os.getloadavg()), "quick": quick, "parts": parts,
            "command": " ".join(["voiced", "bench"] + (["--quick"] if quick else []) + ["--parts", ",".join(parts)]),
            "note": NOISE_NOTE}


def run_bench(settings, quick: bool, out: Path | None, parts: list[str], *, chatterbox_random: Path | None = None,
              config: str | None = None, repeats: int | None = None, tts_engines: list[str] | None = None,
              echo=print) -> dict:
    """Measure `parts` with the real models on this machine; write JSON to `out`; return the results.

    repeats overrides every part's repeat count (tests use 1); tts_engines picks engines
    (default: piper, plus chatterbox when its real weights are here or chatterbox_random is given)."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown bench parts {unknown}; choose from {', '.join(PARTS)}")
    p = plan(quick)
    if repeats is not None:
        p.update(wake=repeats, vad=repeats, stt=repeats, tts=repeats, e2e_turns=repeats, idle_s=min(p["idle_s"], 3))
    from voiced.engines.factory import set_torch_threads

    set_torch_threads(settings)
    results: dict = {"meta": _meta(settings, quick, parts)}
    started = time.monotonic()
    for part in PARTS:                                 # fixed order: always-on first, then the heavy models
        if part not in parts:
            continue
        echo(f"bench: {part} ...", file=sys.stderr)
        t0 = time.monotonic()
        try:
            results[part] = _run_part(part, settings, p, chatterbox_random, config, tts_engines)
        except Skip as exc:
            results[part] = {"skipped": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others
            results[part] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        results[part]["part_s"] = round(time.monotonic() - t0, 1)
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["meta"]["load_avg_end"] = list(os.getloadavg())
    if out is None:
        out = Path("bench-results") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    results["meta"]["out"] = str(out)
    return results


def _run_part(part, settings, p, chatterbox_random, config, tts_engines) -> dict:
    if part == "wake":
        from .listen import bench_wake
        return bench_wake(settings, p["wake"], p["idle_s"])
    if part == "vad":
        from .listen import bench_vad
        return bench_vad(settings, p["vad"])
    if part == "stt":
        from .speech import bench_stt
        return bench_stt(settings, p["stt"], p["stt_lengths"])
    if part == "tts":
        return _run_tts(settings, p, chatterbox_random, tts_engines)
    if part == "accuracy":
        from .accuracy import bench_accuracy
        return bench_accuracy(settings, p["accuracy_requests"], config)
    if part == "turn":
        from .end_of_turn import bench_cutoffs, bench_modes
        return {"cutoffs": bench_cutoffs(settings), "modes": bench_modes(settings, p["e2e_turns"], 1, config)}
    from .e2e import bench_e2e
    return bench_e2e(settings, p["e2e_turns"], p["e2e_idle_s"], config)


def _run_tts(settings, p, chatterbox_random, engines) -> dict:
    from voiced.models import chatterbox as weights

    from .speech import bench_chatterbox, bench_piper

    if engines is None:
        engines = ["piper"]
        if chatterbox_random is not None or weights.status(settings).ready:
            engines.append("chatterbox")
    out = {}
    for name in engines:
        try:
            if name == "piper":
                out[name] = bench_piper(settings, p["tts"], p["tts_budget_s"])
            elif name == "chatterbox":
                random_dir = Path(chatterbox_random) if chatterbox_random else None
                sizes = (1, 3) if random_dir else (1, 3, 8)   # random weights: every chunk costs the same
                out[name] = bench_chatterbox(settings, 1 if random_dir else p["tts"], p["tts_budget_s"],
                                             random_dir, sizes)
            else:
                raise ValueError(f"unknown TTS engine {name!r} (piper, chatterbox)")
        except Skip as exc:
            out[name] = {"skipped": str(exc)}
        except Exception as exc:  # noqa: BLE001 - keep the other engine's numbers
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    return out


# ---- the table ---------------------------------------------------------------------------
def _fmt(x, unit="s") -> str:
    if x is None:
        return "-"
    if unit == "s":
        return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.2f} s"
    if unit == "%":
        return f"{x:.1f} %"
    if unit == "x":
        return f"{x:.2f}x"
    return f"{x:.1f} {unit}"


def table_rows(r: dict) -> list[tuple[str, str, str, str]]:
    """(what, median, p95, note) rows for the parts present."""
    rows = []

    def add(what, s, unit="s", note=""):
        if isinstance(s, dict):
            rows.append((what, _fmt(s.get("median"), unit), _fmt(s.get("p95"), unit), note or f"n={s.get('n')}"))
        else:
            rows.append((what, _fmt(s, unit), "", note))

    for part in PARTS:
        x = r.get(part)
        if x is None:
            continue
        if "skipped" in x or "error" in x:
            rows.append((part, "", "", ("skipped: " + x["skipped"]) if "skipped" in x else "ERROR: " + x["error"]))
            continue
        if part == "wake":
            add("wake: detection delay after the word", x["detect_delay_s"])
            add("wake: idle CPU (% of one core)", x["idle_cpu_pct_of_one_core"], "%", "listen loop alone")
            add("wake: idle RSS", x["idle_rss_mb"], "MB", "listen loop alone")
        elif part == "vad":
            add("vad: end-of-speech detection delay", x["end_detect_delay_s"], note=f"silence_s={x['silence_s']}")
        elif part == "stt":
            rows += _stt_rows(x, add)
        elif part == "tts":
            for engine, e in x.items():
                if not isinstance(e, dict) or "replies" not in e:
                    if isinstance(e, dict) and ("skipped" in e or "error" in e):
                        why = ("skipped: " + e["skipped"]) if "skipped" in e else "ERROR: " + e["error"]
                        rows.append((f"tts {engine}", "", "", why))
                    continue
                tag = f"tts {engine}" + (" [RANDOM WEIGHTS]" if e["weights"].startswith("RANDOM") else "")
                for name, row in e["replies"].items():
                    n = name.split("_")[0]
                    add(f"{tag} {n} sent.: first audio, streamed", row["voiced_first_audio_s"], note=f"RTF {row['rtf']}")
                    add(f"{tag} {n} sent.: first audio, naive", row["naive_first_audio_s"])
                    add(f"{tag} {n} sent.: total, streamed", row["voiced_total_s"], note=f"{row['audio_s']:.1f} s audio")
                    add(f"{tag} {n} sent.: naive / streamed first audio", row["naive_over_voiced_first_audio"], "x")
                if e.get("first_audio_8_over_1") is not None:
                    add(f"{tag}: first audio 8 sent. / 1 sent.", e["first_audio_8_over_1"], "x")
        elif part == "e2e":
            add("e2e: voice-to-voice (mic -> speaker)", x["voice_to_voice_s"], note=f"{x['answered']}/{x['turns']} answered")
            rows.append(("e2e: daemon's STT", "", "", x.get("daemon_stt", "?").split(";")[0]))
            add("e2e: voice-to-voice (daemon's log)", x["daemon_logged_voice_to_voice_s"])
            if x.get("barge_in_trials"):
                add("e2e: barge-in, wake word end -> reply silent", x["barge_in_stop_s"],
                    note=f"{x['barge_in_stop_s'].get('n', 0)}/{x['barge_in_trials']} trials")
                add("e2e: barge-in, stop request -> stream closed", x["barge_in_daemon_stop_s"])
            add("e2e: daemon idle CPU (% of one core)", x["daemon_idle_cpu_pct_of_one_core"], "%")
            m = x["daemon_idle_rss_mb"]
            add("e2e: daemon idle RSS (+ children)", m["daemon_mb"], "MB", f"+{m['children_mb']} MB in {m['children']} child")
        elif part == "turn":
            rows += _turn_rows(x, add)
        elif part == "accuracy":
            from .accuracy import table_rows as accuracy_rows
            rows += accuracy_rows(x)
    return rows


def _turn_rows(x: dict, add) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for family, curves in (("silence", x["cutoffs"]["silence"]), ("semantic", x["cutoffs"]["semantic"])):
        for setting, c in curves.items():
            sp = c["speculations"]
            add(f"end of turn {family} {setting}: delay after the last word", c["end_delay_s"],
                note=f"false cut-offs {c['false_cutoffs']}/{c['mid_sentence_pauses']} mid-sentence pauses "
                     f"({c['false_cutoff_pct']} %), {c['ends_found']}/{c['sentence_ends']} ends; early answers "
                     f"{sp['started']} started, {sp['discarded']} discarded in {c['turns']} turns")
    one = x["cutoffs"]["semantic"].get("p >= 0.5")
    if one:
        add("end of turn: Smart Turn per call", one["model_ms"], "ms")
    for mode, e in x["modes"].items():
        if "voice_to_voice_s" not in e:
            rows.append((f"turn {mode}", "", "", e.get("skipped") or e.get("error", "?")))
            continue
        add(f"turn {mode}: voice-to-voice (mic -> speaker)", e["voice_to_voice_s"],
            note=f"{e['answered']}/{e['turns']} answered; {e['end_of_turn']}")
        add(f"turn {mode}: daemon idle CPU (% of one core)", e["daemon_idle_cpu_pct_of_one_core"], "%")
    return rows


def _stt_rows(x: dict, add) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for name, row in x["lengths"].items():
        for path, label in (("faster_whisper", "faster-whisper"), ("transformers", "transformers"),
                            ("naive", "naive (file path)")):
            add(f"stt {name}: {label}", row[f"{path}_s"], note=f"RTF {row['rtf'][label.split()[0]]}")
        add(f"stt {name}: transformers / faster-whisper", row["transformers_over_faster_whisper"], "x")
        add(f"stt {name}: naive / transformers", row["naive_over_transformers"], "x")
    for engine, quiet in x["silence_3s"].items():
        add(f"stt 3 s silence: {engine}", quiet, note=f"{quiet['rejected']} rejected")
    for engine, p in x["engines"].items():
        if "error" in p:
            rows.append((f"stt {engine}: load", "", "", "ERROR: " + p["error"]))
            continue
        add(f"stt {engine}: imports + load", p["start_s"], note="fresh process")
        add(f"stt {engine}: RSS after use / peak", p["rss_after_use_mb"], "MB", f"peak {p['peak_rss_mb']:.0f} MB")
    w, ws = x["wer_jfk"], x["wer_sentences"]
    rows.append(("stt: WER jfk (faster-whisper / transformers)", f"{w['faster-whisper']:.3f}",
                 f"{w['transformers']:.3f}", f"naive {w['naive']:.3f}; median/p95 cols"))
    rows.append(("stt: WER espeak requests (faster-whisper / transformers)", f"{ws['faster-whisper']:.3f}",
                 f"{ws['transformers']:.3f}", "median/p95 cols"))
    rows.append(("stt: default engine (stt.engine)", x["default_engine"], "", ""))
    return rows


def format_table(r: dict) -> str:
    rows = [("measure", "median", "p95", "")] + table_rows(r)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * (sum(widths) + 6))
    m = r["meta"]
    head = (f"voiced bench on {m['cpu_count']} CPU(s){', ' + m['cuda'] if m['cuda'] else ''}, torch {m['torch']}, "
            f"{m['torch_threads']} torch thread(s); {'quick' if m['quick'] else 'full'} run, {m.get('elapsed_s')} s")
    return "\n".join([head, NOISE_NOTE, ""] + lines + ["", f"JSON: {m.get('out')}"])


# ---- command line ------------------------------------------------------------------------
def add_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--quick", action="store_true", help="fewer repeats and lengths (under ~3 minutes on 2 cores)")
    b.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                   help=f"comma-separated subset of {','.join(PARTS)} (default: all but accuracy)")
    b.add_argument("--out", metavar="FILE", help="JSON output (default: bench-results/bench-<timestamp>.json)")
    b.add_argument("--chatterbox-random", metavar="DIR",
                   help="also time Chatterbox on the random-weight test checkpoint in DIR (built there if missing); "
                        "labelled RANDOM WEIGHTS: it shows the code path's cost, not real speech")


def main_from_args(settings, args) -> int:
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    try:
        results = run_bench(settings, args.quick, Path(args.out) if args.out else None, parts,
                            chatterbox_random=Path(args.chatterbox_random) if args.chatterbox_random else None,
                            config=getattr(args, "config", None))
    except ValueError as exc:
        print(f"voiced bench: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    return 1 if any(isinstance(results.get(p), dict) and "error" in results[p] for p in parts) else 0


def main(argv: list[str] | None = None) -> int:
    from voiced.config import load_settings
    from voiced.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m voiced.bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="voiced config file (as `voiced --config`)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings, _ = load_settings(args.config)
    setup_logging("WARNING")
    return main_from_args(settings, args)


if __name__ == "__main__":
    sys.exit(main())
