"""`voiced bench --parts accuracy`: word error rate on voices Whisper has not seen.

The set (build_set, also `scripts/make_accuracy_set.py`): the same 8 short assistant requests
in English, German, French and Spanish, each spoken by synthetic voices (espeak-ng voice
variants at two speeds; Piper's packaged voice for English) and mixed with noise at a known
SNR: pink and brown noise (a fan, a room) and babble (5 other espeak sentences at once) at
20, 10 and 5 dB. WAVs + manifest.json in a cache folder, regenerated on demand, never committed.

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
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from .common import RATE, Skip, espeak, speech_bounds, word_edits, words

VERSION = 1
UNINTELLIGIBLE = 0.5          # clean file-path WER above this: the voice, not voiced, is measured
SPEECH_DBFS = -24.0           # active speech level of every clean clip
PAD_S = 0.5                   # silence around the speech, as VAD segments keep

REQUESTS: dict[str, tuple[str, ...]] = {
    "en": ("What time is it?",
           "Set a timer for ten minutes.",
           "What is the weather like tomorrow?",
           "Turn off the lights in the kitchen.",
           "Play some music in the living room.",
           "Remind me to call my mother tonight.",
           "How long does it take to drive to the airport?",
           "Add milk and bread to the shopping list."),
    "de": ("Wie spät ist es?",
           "Stell einen Timer auf zehn Minuten.",
           "Wie wird das Wetter morgen?",
           "Mach das Licht in der Küche aus.",
           "Spiel etwas Musik im Wohnzimmer.",
           "Erinnere mich daran, heute Abend meine Mutter anzurufen.",
           "Wie lange dauert die Fahrt zum Flughafen?",
           "Setz Milch und Brot auf die Einkaufsliste."),
    "fr": ("Quelle heure est-il ?",
           "Mets un minuteur de dix minutes.",
           "Quel temps fera-t-il demain ?",
           "Éteins la lumière dans la cuisine.",
           "Mets de la musique dans le salon.",
           "Rappelle-moi d'appeler ma mère ce soir.",
           "Combien de temps faut-il pour aller à l'aéroport ?",
           "Ajoute du lait et du pain à la liste de courses."),
    "es": ("¿Qué hora es?",
           "Pon un temporizador de diez minutos.",
           "¿Qué tiempo hará mañana?",
           "Apaga las luces de la cocina.",
           "Pon algo de música en el salón.",
           "Recuérdame llamar a mi madre esta noche.",
           "¿Cuánto se tarda en llegar al aeropuerto?",
           "Añade leche y pan a la lista de la compra."),
}
LANGUAGES = tuple(REQUESTS)

# (language, voice id, engine, engine arguments). espeak: voice+variant and words per minute.
# Piper: only what PiperEngine exposes (its packaged voice; it has no length/noise scale knob,
# and a time-stretch of its output would not be another voice).
VOICES: tuple[tuple[str, str, str, dict], ...] = tuple(
    (lang, f"espeak {v} s{s}", "espeak", {"voice": v, "speed": s})
    for lang, ev in (("en", "en-us"), ("de", "de"), ("fr", "fr"), ("es", "es"))
    for v, s in ((f"{ev}+m3", 175), (f"{ev}+f3", 140))
) + (("en", "piper joe-us", "piper", {}),)

# Babble: other sentences (never the requests), in the four languages, by other voices.
BABBLE_TEXTS = (
    ("en-us+m1", "The meeting was moved to Thursday afternoon because of the holiday."),
    ("en-gb+f2", "She said the new bakery on the corner opens at seven every morning."),
    ("de+m2", "Ich habe gestern einen langen Spaziergang am Fluss gemacht."),
    ("de+f4", "Wir müssen noch die Fenster im Dachgeschoss streichen."),
    ("fr+m4", "Nous avons visité le musée avant le déjeuner avec les enfants."),
    ("es+f1", "El tren llegó con veinte minutos de retraso a la estación."),
    ("en-us+m7", "Could you send me the report before the end of the week, please?"),
)
BABBLE_TALKERS = 5
SNRS = (20, 10, 5)
CONDITIONS = ("clean",) + tuple(f"{kind} {snr} dB" for kind in ("pink", "brown", "babble") for snr in SNRS)
LIVE_LANGUAGES = ("en", "de")
LIVE_CONDITIONS = ("clean", "babble 10 dB")

_NUMBERS = {w: str(n) for n, ws in {
    1: "one eins un une uno una", 2: "two zwei deux dos", 3: "three drei trois tres",
    4: "four vier quatre cuatro", 5: "five fünf cinq cinco", 6: "six sechs seis",
    7: "seven sieben sept siete", 8: "eight acht huit ocho", 9: "nine neun neuf nueve",
    10: "ten zehn dix diez", 20: "twenty zwanzig vingt veinte"}.items() for w in ws.split()}
_NUMBERS["un"] = _NUMBERS["une"] = _NUMBERS["una"] = "1"   # articles too: both sides the same


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voiced-tests" / "accuracy"


# ---- text ---------------------------------------------------------------------------------
def norm_words(text: str) -> list[str]:
    """What WER compares: lower case, punctuation dropped, number words as digits."""
    return [_NUMBERS.get(w, w) for w in words(text.replace("’", "'").replace("-", " "))]


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


# ---- the set ------------------------------------------------------------------------------
def _spec(languages, voices, conditions, requests) -> dict:
    return {"version": VERSION, "languages": list(languages), "voices": list(voices),
            "conditions": list(conditions), "requests": requests, "speech_dbfs": SPEECH_DBFS, "pad_s": PAD_S}


def _seed(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """float32 speech scaled so its active span (first to last loud sample) is at `dbfs` RMS."""
    audio = np.asarray(audio, dtype=np.float64)
    a, b = speech_bounds(audio)
    span = audio[int(a * RATE):int(b * RATE)]
    return (audio * (10 ** (dbfs / 20) / np.sqrt(np.mean(span ** 2)))).astype(np.float32)


def _pink(n: int, rng) -> np.ndarray:
    from scipy.signal import lfilter
    white = rng.normal(size=n + RATE)
    return lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400], white)[RATE:]


def _brown(n: int, rng) -> np.ndarray:
    """1/f^2 noise: white through a leaky integrator (no drift), a fan's rumble."""
    from scipy.signal import lfilter
    return lfilter([1.0], [1.0, -0.995], rng.normal(size=n + RATE))[RATE:]


def _babble(n: int, rng, sources: list[np.ndarray]) -> np.ndarray:
    """BABBLE_TALKERS sentences at once, each looped from a random offset, at equal levels."""
    out = np.zeros(n)
    for k in rng.choice(len(sources), size=BABBLE_TALKERS, replace=False):
        s = sources[k]
        s = np.concatenate([s, np.zeros(int(0.3 * RATE), np.float32)])
        looped = np.tile(s, n // len(s) + 2)
        start = int(rng.integers(0, len(s)))
        out += looped[start:start + n]
    return out


def mix(speech: np.ndarray, condition: str, seed: int, babble_sources: list[np.ndarray] | None = None) -> np.ndarray:
    """Clean speech (float32, levelled, padded) + noise at the condition's SNR, measured
    against the speech's active span; the noise covers the whole clip."""
    if condition == "clean":
        return speech
    kind, snr, _db = condition.split()
    rng = np.random.default_rng(seed)
    n = speech.size
    noise = {"pink": lambda: _pink(n, rng), "brown": lambda: _brown(n, rng),
             "babble": lambda: _babble(n, rng, babble_sources)}[kind]()
    a, b = speech_bounds(speech)
    p_speech = np.mean(speech[int(a * RATE):int(b * RATE)].astype(np.float64) ** 2)
    noise = noise * np.sqrt(p_speech / 10 ** (float(snr) / 10) / np.mean(noise ** 2))
    return (speech + noise).astype(np.float32)


def _render(engine: str, args: dict, text: str, piper) -> np.ndarray:
    if engine == "espeak":
        return espeak(text, args["voice"], args["speed"]).astype(np.float32) / 32768
    from voiced.audio.dsp import resample

    chunks = list(piper.synthesize(text))
    return resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, RATE)


def build_set(out: Path | None = None, settings=None, *, languages=LANGUAGES, voices=None, conditions=CONDITIONS,
              requests: int = 8, force: bool = False, echo=None) -> dict:
    """Write the WAVs and manifest.json under `out` (default_dir()); reuse a complete set built
    with the same specification unless `force`. Returns the manifest."""
    from voiced.audio.decode import write_wav

    out = Path(out or default_dir())
    voices = [v for v in VOICES if v[0] in languages and (voices is None or v[1] in voices)]
    spec = _spec(languages, [v[1] for v in voices], conditions, requests)
    path = out / "manifest.json"
    if not force and path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("spec") == spec and all((out / f["file"]).is_file() for f in old["files"]):
                return old
        except (ValueError, KeyError):
            pass
    if shutil.which("espeak-ng") is None:
        raise Skip("espeak-ng is not installed (apt-get install espeak-ng)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    piper = None
    if any(v[2] == "piper" for v in voices):
        from voiced.config import Settings
        from voiced.engines.tts_piper import PiperEngine

        piper = PiperEngine((settings or Settings()).tts)
        piper.load()
    babble = [_level(espeak(t, v, 160).astype(np.float32) / 32768, SPEECH_DBFS) for v, t in BABBLE_TEXTS]
    files = []
    try:
        for lang, vid, engine, args in voices:
            for i, text in enumerate(REQUESTS[lang][:requests]):
                raw = _render(engine, args, text, piper)
                pad = np.zeros(int(PAD_S * RATE), np.float32)
                clean = np.concatenate([pad, _level(raw, SPEECH_DBFS), pad])
                a, b = speech_bounds(clean)
                for cond in conditions:
                    audio = mix(clean, cond, _seed(lang, vid, i, cond), babble)
                    peak = float(np.max(np.abs(audio)))
                    if peak > 0.99:
                        audio = audio * (0.99 / peak)      # never clip: SNR is a ratio, it is kept
                    name = re.sub(r"[^\w.-]+", "_", f"{lang}-{vid}-{i}-{cond}") + ".wav"
                    write_wav(out / name, audio, RATE)
                    files.append({"file": name, "id": f"{lang}/{vid}/{i}", "text": text, "language": lang,
                                  "voice": vid, "engine": engine, "condition": cond, "request": i,
                                  "speech_s": round(b - a, 2), "length_s": round(audio.size / RATE, 2),
                                  "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()[:16]})
    finally:
        if piper is not None:
            piper.close()
    manifest = {"spec": spec, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rate": RATE,
                "build_s": round(time.monotonic() - started, 1), "files": files}
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    if echo:
        echo(f"accuracy set: {len(files)} files in {out} ({manifest['build_s']} s)", file=sys.stderr)
    return manifest


def load_audio(out: Path, item: dict) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(Path(out) / item["file"], dtype="float32")
    assert rate == RATE
    return audio


# ---- file path ----------------------------------------------------------------------------
def stt_for(settings, language: str):
    """FasterWhisperSTT with `language` forced ("auto" = detected), loaded and warmed up."""
    from voiced.engines.stt_faster_whisper import FasterWhisperSTT
    from voiced.models import whisper_fast

    if not whisper_fast.status(settings).ready:
        raise Skip("faster-whisper weights are not prepared (voiced models fetch)")
    s = settings.model_copy(update={"stt": settings.stt.model_copy(update={"language": (language,)})})
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
    subset = _live_subset(items, ok)
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


def _live_subset(items, ok) -> list[dict]:
    """Per live language, its first intelligible voice (Piper for English), live conditions."""
    chosen = {}
    for it in items:
        if it["language"] in LIVE_LANGUAGES and ok(it) and it["language"] not in chosen:
            chosen[it["language"]] = it["voice"]
    if "en" in chosen and any(i["engine"] == "piper" and ok(i) for i in items):
        chosen["en"] = "piper joe-us"
    return [i for i in items if chosen.get(i["language"]) == i["voice"] and i["condition"] in LIVE_CONDITIONS]


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 4)


def _detection(settings, out: Path, items: list[dict], ok) -> dict:
    """Detected language per request (clean, speech >= 2 s); unintelligible voices counted apart."""
    from voiced.engines.base import Transcript

    if "language" not in getattr(Transcript, "__dataclass_fields__", {}):
        return {"skipped": "Transcript has no language attribute (language detection not in this build)"}
    engine = stt_for(settings, "auto")
    per = defaultdict(lambda: [0, 0])
    wrong = []
    for it in items:
        got = engine.transcribe(load_audio(out, it)).language
        key = it["language"] + ("" if ok(it) else " (unintelligible voices)")
        per[key][0] += got == it["language"]
        per[key][1] += 1
        if got != it["language"]:
            wrong.append(f"{it['file']}: {got}")
    good = [v for k, v in per.items() if "(" not in k]
    return {"per_language": {k: {"correct": c, "n": n} for k, (c, n) in per.items()},
            "accuracy": round(sum(c for c, _ in good) / max(1, sum(n for _, n in good)), 3),
            "wrong": wrong[:30], "requests": "clean, speech >= 2 s; accuracy over intelligible voices"}


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
    if "accuracy" in det:
        per = ", ".join(f"{k} {v['correct']}/{v['n']}" for k, v in det["per_language"].items())
        lines += ["", f"Language detection (\"auto\", {det['requests']}): {100 * det['accuracy']:.0f} % ({per})"]
    elif det:
        lines += ["", f"Language detection: {det.get('skipped')}"]
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
    if "accuracy" in det:
        rows.append(("accuracy: language detection (auto)", f"{100 * det['accuracy']:.0f} %", "", det["requests"]))
    return rows
