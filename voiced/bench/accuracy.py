"""`voiced bench --parts accuracy`: word error rate on voices Whisper has not seen.

The set: accuracy_set.py (the same short requests in four languages, synthetic voices, noise).

Measured:
1. each voice's clean WER on the file path with the language forced to the request's: a voice
   above UNINTELLIGIBLE (0.5) measures the voice, not voiced; it is reported on its own and
   kept out of its language's figures (and out of the noisy conditions);
2. WER per language and condition on the file path (FasterWhisperSTT on the WAV);
3. the live path on a subset: the same audio after "hey jarvis", played into the virtual
   microphone of a running daemon (the e2e harness), its "heard '...'" read from the turn
   log line; printed beside the file path's WER on the same files, with the difference;
4. language detection ("auto") on requests of 2 s or more, where the engine reports it.

Corpus WER everywhere: word edits / reference words over all files of a cell. Numbers are
compared as digits ("ten" and "10" are the same word).
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np

from .accuracy_set import (  # noqa: F401 - the set's names, as the tests and scripts use them
    CONDITIONS,
    LANGUAGES,
    REQUESTS,
    VOICES,
    build_set,
    default_dir,
    load_audio,
)
from .common import RATE, Skip, speech_bounds, word_edits, words  # noqa: F401 - speech_bounds for the tests

UNINTELLIGIBLE = 0.5          # clean file-path WER above this: the voice, not voiced, is measured
LIVE_LANGUAGES = ("en", "de", "fr", "es")
LIVE_CONDITIONS = ("clean", "babble 10 dB")

_NUMBERS = {w: str(n) for n, ws in {
    1: "one eins un une uno una", 2: "two zwei deux dos", 3: "three drei trois tres",
    4: "four vier quatre cuatro", 5: "five fünf cinq cinco", 6: "six sechs seis",
    7: "seven sieben sept siete", 8: "eight acht huit ocho", 9: "nine neun neuf nueve",
    10: "ten zehn dix diez", 20: "twenty zwanzig vingt veinte"}.items() for w in ws.split()}
_NUMBERS["un"] = _NUMBERS["une"] = _NUMBERS["una"] = "1"   # articles too: both sides the same


# ---- text ---------------------------------------------------------------------------------
def _plain(word: str) -> str:
    """Accents dropped, as Whisper's own multilingual normaliser does: "Pón" for "Pon" or
    "Éteint" for "Éteins" is a spelling slip the listener never hears; the word still counts."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def norm_words(text: str) -> list[str]:
    """What WER compares: lower case, punctuation and accents dropped, number words as digits."""
    return [_plain(_NUMBERS.get(w, w)) for w in words(text.replace("’", "'").replace("-", " "))]


def edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words)."""
    ref = norm_words(reference)
    return word_edits(ref, norm_words(hypothesis)), len(ref)


def corpus_wer(pairs) -> float | None:
    """Word edits / reference words over (reference, hypothesis) pairs."""
    e = n = 0
    for ref, hyp in pairs:
        a, b = edits(ref, hyp)
        e, n = e + a, n + b
    return round(e / n, 4) if n else None


# ---- file path ----------------------------------------------------------------------------
def stt_for(settings, language):
    """FasterWhisperSTT for [stt] language = `language` (a code: forced; "auto": detected; a
    tuple: detected among those), loaded and warmed up."""
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT
    from voiced.models import whisper_fast

    if not whisper_fast.status(settings).ready:
        raise Skip("faster-whisper weights are not prepared (voiced models fetch)")
    codes = (language,) if isinstance(language, str) else tuple(language)
    s = settings.model_copy(update={"stt": settings.stt.model_copy(update={"language": codes})})
    engine = FasterWhisperSTT(s.stt, s)
    engine.load()
    engine.warmup()
    return engine


def transcribe_all(out: Path, items: list[dict], engine) -> dict[str, str]:
    """file name -> what the engine heard."""
    return {it["file"]: engine.transcribe(load_audio(out, it)).text for it in items}


def judge_voices(items: list[dict], heard: dict[str, str]) -> dict[str, dict]:
    """'lang/voice' -> clean WER and whether it is intelligible enough to measure voiced with."""
    by_voice = defaultdict(list)
    for it in items:
        if it["condition"] == "clean":
            by_voice[f"{it['language']}/{it['voice']}"].append((it["text"], heard[it["file"]]))
    return {k: {"clean_wer": (w := corpus_wer(p)), "n": len(p), "intelligible": w is not None and w <= UNINTELLIGIBLE}
            for k, p in sorted(by_voice.items())}


def wer_table(items: list[dict], heard: dict[str, str], keep=lambda it: True) -> dict[str, dict[str, dict]]:
    """language -> condition -> {wer, n} over the items kept."""
    cells = defaultdict(list)
    for it in items:
        if it["file"] in heard and keep(it):
            cells[(it["language"], it["condition"])].append((it["text"], heard[it["file"]]))
    out: dict = defaultdict(dict)
    for (lang, cond), pairs in sorted(cells.items(), key=lambda kv: (LANGUAGES.index(kv[0][0]),
                                                                   CONDITIONS.index(kv[0][1]))):
        out[lang][cond] = {"wer": corpus_wer(pairs), "n": len(pairs)}
    return dict(out)


# ---- live path ----------------------------------------------------------------------------
_TURN = re.compile(r"turn \d+ \((wake[^)]*)\) ([^:]*): heard (.*), said ")


def parse_heard(line: str) -> str | None:
    m = _TURN.search(line)
    if not m:
        return None
    try:
        return str(ast.literal_eval(m.group(3)))
    except (ValueError, SyntaxError):
        return m.group(3).strip("'\"")


def live_heard(settings, out: Path, items: list[dict], config: str | None = None, echo=None,
               extra_env: dict | None = None) -> dict[str, dict]:
    """file name -> {heard, turn line} from a running daemon, one daemon per language (its
    language forced, as the file path's is); "hey jarvis" + 0.7 s + the file into the mic."""
    from voiced.audio.decode import write_wav

    from .e2e import Daemon, _pulse_support, _wake_audio

    pulse = _pulse_support()
    harness = pulse.PulseHarness().start()
    tmp = Path(tempfile.mkdtemp(prefix="voiced-bench-accuracy-"))
    result: dict[str, dict] = {}
    wake = _wake_audio()
    try:
        for lang in sorted({it["language"] for it in items}, key=LANGUAGES.index):
            env = {**os.environ, **harness.env, "VOICED_AUDIO__INPUT_DEVICE": "default",
                   "VOICED_AUDIO__OUTPUT_DEVICE": "default", "VOICED_WEB__ENABLED": "false",
                   "VOICED_HOTKEY__ENABLED": "false", "VOICED_STT__LANGUAGE": json.dumps([lang]),
                   "VOICED_CONVERSATION__FOLLOW_UP_S": "0",
                   # a short, side-effect-free reply: no timers set, no lights switched
                   "VOICED_RESPONDER__KIND": "command", "VOICED_RESPONDER__COMMAND": '["echo", "ok"]',
                   **(extra_env or {})}
            daemon = Daemon(env, tmp, config)
            try:
                daemon.wait_for(r"listening for ", timeout=300)
                time.sleep(2.0)
                for it in (i for i in items if i["language"] == lang):
                    wav = tmp / "turn.wav"
                    write_wav(wav, np.concatenate([np.zeros(RATE // 2, np.float32), wake,
                                                   np.zeros(int(0.7 * RATE), np.float32), load_audio(out, it),
                                                   np.zeros(RATE, np.float32)]), RATE)
                    mark = len(daemon.lines)
                    player = harness.play_into_mic(wav)
                    try:
                        _at, m = daemon.wait_for(r"turn \d+ \(wake[^)]*\) .*", timeout=40, start=mark)
                        line = m.group(0)
                        result[it["file"]] = {"heard": parse_heard(line) or "", "line": line[:300]}
                    except TimeoutError:
                        result[it["file"]] = {"heard": "", "line": None, "not_woken": True}
                    player.wait(30)
                    time.sleep(1.5)                    # the reply's tail, then the next turn
                    if echo:
                        echo(f"  live {it['file']}: {result[it['file']]['heard']!r}", file=sys.stderr)
            finally:
                daemon.stop()
    finally:
        harness.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---- the part -----------------------------------------------------------------------------
def bench_accuracy(settings, requests: int = 8, config: str | None = None, out: Path | None = None,
                   live: bool = True, echo=print) -> dict:
    """The whole measurement (see the module's doc); `voiced bench --quick`: 4 requests per voice."""
    started = time.monotonic()
    out = Path(out or default_dir())
    manifest = build_set(out, settings, requests=requests, echo=echo)
    items = manifest["files"]
    heard: dict[str, str] = {}
    result: dict = {"set": {"dir": str(out), "files": len(items), "requests_per_voice": requests,
                            "built": manifest["built"], "voices": len({(i["language"], i["voice"]) for i in items}),
                            "conditions": list(CONDITIONS)}}
    # 1. judge the voices: clean only, language forced to the request's
    engines = {}
    for lang in LANGUAGES:
        engines[lang] = stt_for(settings, lang)
        heard.update(transcribe_all(out, [i for i in items if i["language"] == lang and i["condition"] == "clean"],
                                    engines[lang]))
    voices = judge_voices(items, heard)
    result["voices"] = voices
    ok = lambda it: voices[f"{it['language']}/{it['voice']}"]["intelligible"]
    # 2. the file path, every condition, intelligible voices only
    for lang in LANGUAGES:
        heard.update(transcribe_all(out, [i for i in items if i["language"] == lang and ok(i)
                                          and i["file"] not in heard], engines[lang]))
    result["file"] = wer_table(items, heard, ok)
    result["unintelligible"] = {k: v for k, v in voices.items() if not v["intelligible"]}
    result["file_s"] = round(time.monotonic() - started, 1)
    # 4. language detection, where the engine reports a language
    result["detection"] = _detection(settings, out, [i for i in items if i["condition"] == "clean"
                                                     and i["speech_s"] >= 2.0], ok)
    engines.clear()
    # 3. the live path, on a subset
    subset = _live_subset(items, voices)
    result["live_subset"] = (f"{', '.join(LIVE_LANGUAGES)}; {', '.join(LIVE_CONDITIONS)}; one voice per language "
                             f"({', '.join(sorted({i['language'] + ': ' + i['voice'] for i in subset}))}); "
                             f"{len(subset)} turns (the live path takes ~10 s a turn)")
    if live:
        try:
            got = live_heard(settings, out, subset, config, echo)
            lheard = {k: v["heard"] for k, v in got.items()}
            fw, lw = wer_table(subset, heard), wer_table(subset, lheard)
            result["live"] = {lang: {cond: {"file_wer": fw[lang][cond]["wer"], "live_wer": lw[lang][cond]["wer"],
                                            "difference": _diff(lw[lang][cond]["wer"], fw[lang][cond]["wer"]),
                                            "n": fw[lang][cond]["n"],
                                            "not_woken": sum(bool(got[i["file"]].get("not_woken")) for i in subset
                                                             if i["language"] == lang and i["condition"] == cond)}
                                     for cond in fw[lang]} for lang in fw}
            result["live_transcripts"] = {i["file"]: {"text": i["text"], "file": heard[i["file"]],
                                                      "live": got[i["file"]]["heard"]} for i in subset}
        except Skip as exc:
            result["live"] = {"skipped": str(exc)}
    result["worst"] = sorted(({"file": i["file"], "text": i["text"], "heard": heard[i["file"]],
                               "wer": round(edits(i["text"], heard[i["file"]])[0] / max(1, len(norm_words(i["text"]))), 3)}
                              for i in items if i["file"] in heard and ok(i)), key=lambda d: -d["wer"])[:12]
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    echo(format_accuracy(result), file=sys.stderr)
    return result


def _live_subset(items, voices: dict[str, dict]) -> list[dict]:
    """Per live language, its clearest voice (lowest clean WER; Piper for English, a voice like
    those people use), in the live conditions."""
    chosen = {}
    for lang in LIVE_LANGUAGES:
        ranked = sorted((v["clean_wer"], key.split("/", 1)[1]) for key, v in voices.items()
                        if key.startswith(lang + "/") and v["intelligible"] and v["clean_wer"] is not None)
        if ranked:
            chosen[lang] = ranked[0][1]
    if "en" in chosen and voices.get("en/piper joe-us", {}).get("intelligible"):
        chosen["en"] = "piper joe-us"
    return [i for i in items if chosen.get(i["language"]) == i["voice"] and i["condition"] in LIVE_CONDITIONS]


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 4)


def _detection(settings, out: Path, items: list[dict], ok) -> dict:
    """Detected language per request (clean, speech >= 2 s), with [stt] language = "auto" (any
    of Whisper's ~99) and with the set's languages as the list to choose from; unintelligible
    voices are counted apart."""
    modes = {}
    for mode, language in (("auto", ("auto",)), (f"among {', '.join(LANGUAGES)}", LANGUAGES)):
        engine = stt_for(settings, language)
        per = defaultdict(lambda: [0, 0])
        wrong = []
        for it in items:
            got = engine.transcribe(load_audio(out, it))
            key = it["language"] + ("" if ok(it) else " (unintelligible voices)")
            per[key][0] += got.language == it["language"]
            per[key][1] += 1
            if got.language != it["language"]:
                wrong.append(f"{it['file']}: {got.language} (p={got.language_probability or 0:.2f})")
        good = [v for k, v in per.items() if "(" not in k]
        modes[mode] = {"per_language": {k: {"correct": c, "n": n} for k, (c, n) in per.items()},
                       "accuracy": round(sum(c for c, _ in good) / max(1, sum(n for _, n in good)), 3),
                       "n": sum(n for _, n in good), "wrong": wrong[:30]}
    return {"modes": modes, "requests": "clean, speech >= 2 s; accuracy over intelligible voices"}


# ---- printing -----------------------------------------------------------------------------
def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_accuracy(r: dict) -> str:
    """Markdown tables: file-path WER language x condition, voices, live vs file, detection."""
    lines = ["File path WER (intelligible voices only; language forced to the request's):", ""]
    langs = list(r["file"])
    lines.append("| condition | " + " | ".join(langs) + " |")
    lines.append("|---" * (len(langs) + 1) + "|")
    for cond in CONDITIONS:
        cells = [r["file"][lang].get(cond) for lang in langs]
        if any(cells):
            lines.append(f"| {cond} | " + " | ".join(f"{_pct(c['wer'])} (n={c['n']})" if c else "-" for c in cells) + " |")
    lines += ["", "Voices, clean file-path WER (> 50 %: unintelligible, reported apart):", "",
              "| language / voice | clean WER | |", "|---|---|---|"]
    for k, v in r["voices"].items():
        lines.append(f"| {k} | {_pct(v['clean_wer'])} | {'ok' if v['intelligible'] else '**UNINTELLIGIBLE**'} |")
    live = r.get("live")
    lines += ["", f"Live path (daemon, virtual mic) vs file path, same files: {r.get('live_subset', '')}", ""]
    if not live or "skipped" in live:
        lines.append(f"live path not measured{': ' + live['skipped'] if live else ''}")
    else:
        lines += ["| language | condition | file WER | live WER | live - file | not woken |", "|---|---|---|---|---|---|"]
        for lang, conds in live.items():
            for cond, c in conds.items():
                d = c["difference"]
                lines.append(f"| {lang} | {cond} | {_pct(c['file_wer'])} | {_pct(c['live_wer'])} | "
                             f"{'-' if d is None else f'{100 * d:+.1f} pt'} | {c['not_woken']}/{c['n']} |")
    det = r.get("detection") or {}
    for mode, d in det.get("modes", {}).items():
        per = ", ".join(f"{k} {v['correct']}/{v['n']}" for k, v in d["per_language"].items())
        lines += ["", f"Language detection ({mode}; {det['requests']}): {100 * d['accuracy']:.0f} % ({per})"]
        if d["wrong"]:
            lines.append("  wrong: " + "; ".join(d["wrong"]))
    return "\n".join(lines)


def table_rows(x: dict) -> list[tuple[str, str, str, str]]:
    """Rows for `voiced bench`'s table: (what, value, second value, note)."""
    rows = []
    for lang, conds in x["file"].items():
        for cond, c in conds.items():
            rows.append((f"accuracy {lang} {cond}: WER file path", _pct(c["wer"]), "", f"n={c['n']}"))
    for k, v in x["unintelligible"].items():
        rows.append((f"accuracy UNINTELLIGIBLE voice {k}: clean WER", _pct(v["clean_wer"]), "",
                     "not in its language's figures"))
    live = x.get("live") or {}
    if "skipped" in live:
        rows.append(("accuracy live path", "", "", "skipped: " + live["skipped"]))
    for lang, conds in live.items() if "skipped" not in live else ():
        for cond, c in conds.items():
            d = c["difference"]
            rows.append((f"accuracy {lang} {cond}: WER file / live", _pct(c["file_wer"]), _pct(c["live_wer"]),
                         f"live - file {'-' if d is None else f'{100 * d:+.1f} pt'}; n={c['n']}, "
                         f"not woken {c['not_woken']}; subset"))
    det = x.get("detection") or {}
    for mode, d in det.get("modes", {}).items():
        rows.append((f"accuracy: language detection ({mode})", f"{100 * d['accuracy']:.0f} %", "",
                     f"n={d['n']}; {det['requests']}"))
    return rows
