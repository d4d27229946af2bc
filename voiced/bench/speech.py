"""STT and TTS, each beside the naive path of the product spec, in the same run.

STT naive path: `transformers.pipeline("automatic-speech-recognition", model=DIR)` called with
a file path and no other arguments (ffmpeg decodes the file on every call; default generation,
fp32, and for a multilingual model a language-detection pass). voiced's paths: each of its two
back ends (stt.engine faster-whisper and transformers) as the daemon builds it, on a float32
numpy array.

TTS naive path: synthesise the whole reply, then play it (first audio = whole synthesis);
for Chatterbox that is one `ChatterboxTTS.generate()` over the reply. voiced's path: the
engine's sentence stream; first audio = when the first chunk is ready.
"""
from __future__ import annotations

import contextlib
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import (
    JFK_REFERENCE,
    RATE,
    Skip,
    jfk,
    ratio,
    reply_text,
    speech_bounds,
    summary,
    wer,
)

STT_LENGTHS_S = (1, 5, 15, 30)
TTS_SIZES = (1, 3, 8)


# ---- speech-to-text ------------------------------------------------------------------
ENGINES = ("faster-whisper", "transformers")   # voiced's two back ends (stt.engine)
STT_PATHS = ENGINES + ("naive",)
WER_SENTENCES = (                               # espeak-ng requests, beside jfk's human speech
    "What is the weather like in London tomorrow morning?",
    "Please play some music in the living room.",
    "What time is it?",
    "Set a timer for ten minutes.",
)
PROBE_TIMEOUT_S = 300


def _engine_settings(settings, name: str):
    return settings.model_copy(update={"stt": settings.stt.model_copy(update={"engine": name})})


def probe_engine(settings_json: str, name: str) -> dict:
    """In a fresh process: start time (imports of torch + transformers or of ctranslate2, and
    loading the weights) and memory of one engine (run by _probe)."""
    from voiced.bench.common import proc_rss_mb
    from voiced.config import Settings
    from voiced.engines.factory import build_stt

    settings = _engine_settings(Settings.model_validate_json(settings_json), name)
    t0 = time.perf_counter()
    engine = build_stt(name, settings)
    info = engine.load()
    t1 = time.perf_counter()
    rss_loaded = proc_rss_mb()
    engine.warmup()
    engine.transcribe(jfk())
    peak = next((int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                 if line.startswith("VmHWM:")), 0.0)
    return {"start_s": round(t1 - t0, 3), "rss_loaded_mb": rss_loaded,
            "rss_after_use_mb": proc_rss_mb(), "peak_rss_mb": round(peak, 1), "device": info.device,
            "model": info.model, "source": info.source, "notes": list(info.notes)}


def _probe(settings, name: str) -> dict:
    import json
    import subprocess
    import sys

    code = ("import json, sys; from voiced.bench.speech import probe_engine; "
            "print(json.dumps(probe_engine(sys.stdin.read(), sys.argv[1])))")
    proc = subprocess.run([sys.executable, "-c", code, name], input=settings.model_dump_json(), text=True,
                          capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _timed(call) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = call()
    return time.perf_counter() - t0, result


def bench_stt(settings, repeats: int, lengths=STT_LENGTHS_S) -> dict:
    """faster-whisper, transformers (both as voiced runs them, numpy in) and the naive pipeline
    (file path in), interleaved on the same audio; load and memory each in a fresh process."""
    from transformers import pipeline

    from voiced.audio.decode import write_wav
    from voiced.engines.factory import build_stt, faster_whisper_ready
    from voiced.models.whisper import resolve

    from .common import espeak

    why_not = faster_whisper_ready(settings)
    if why_not:
        raise Skip(f"faster-whisper cannot run here: {why_not}")
    speech = jfk()
    onset = int(speech_bounds(speech)[0] * RATE)
    long = np.tile(speech[onset:], 4)                  # cut/concatenated jfk: any length up to 40 s
    clips = {n: long[: n * RATE] for n in lengths}
    silence = np.zeros(3 * RATE, np.float32)
    out: dict = {"default_engine": _default_engine(settings), "engines": {}, "lengths": {}}
    for name in ENGINES:                               # before anything is loaded here: a quiet machine
        out["engines"][name] = _probe(settings, name)
    engines = {}
    for name in ENGINES:
        engines[name] = build_stt(name, _engine_settings(settings, name))
        engines[name].load()
        engines[name].warmup()
    naive = pipeline("automatic-speech-recognition", model=resolve(settings)[0])   # the spec's call, verbatim
    out["naive_device"] = str(getattr(naive, "device", "?"))
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n, clip in clips.items():
            files[n] = Path(tmp) / f"speech-{n}s.wav"
            write_wav(files[n], clip, RATE)
        first = min(lengths)
        naive(str(files[first]))                       # warm-up, not timed
        calls = {n: {"naive": (lambda f=files[n]: naive(str(f))),
                     **{e: (lambda e=e, c=clips[n]: engines[e].transcribe(c)) for e in ENGINES}} for n in lengths}
        times: dict = {n: {p: [] for p in STT_PATHS} for n in lengths}
        quiet: dict = {e: [] for e in ENGINES}
        for _ in range(repeats):
            for n in lengths:                          # interleaved: every path sees the same noise
                for path in STT_PATHS:
                    times[n][path].append(_timed(calls[n][path])[0])
            for e in ENGINES:
                elapsed, heard = _timed(lambda e=e: engines[e].transcribe(silence))
                quiet[e].append(elapsed if not heard.text else None)
        jfk_file = Path(tmp) / "jfk.wav"
        write_wav(jfk_file, speech, RATE)
        heard = {e: engines[e].transcribe(speech).text for e in ENGINES}
        heard["naive"] = naive(str(jfk_file))["text"].strip()
    for n in lengths:
        t = {p: summary(times[n][p]) for p in STT_PATHS}
        out["lengths"][f"{n}s"] = {
            "audio_s": n, **{f"{p.replace('-', '_')}_s": t[p] for p in STT_PATHS},
            "rtf": {p: ratio(t[p], n) for p in STT_PATHS},
            "transformers_over_faster_whisper": ratio(t["transformers"], t["faster-whisper"]),
            "naive_over_faster_whisper": ratio(t["naive"], t["faster-whisper"]),
            "naive_over_transformers": ratio(t["naive"], t["transformers"])}
    out["silence_3s"] = {e: summary(quiet[e]) | {"rejected": sum(q is not None for q in quiet[e])} for e in ENGINES}
    out["wer_jfk"] = {p: wer(JFK_REFERENCE, heard[p]) for p in STT_PATHS} | {"text": heard}
    sentences = {}
    for sentence in WER_SENTENCES:
        audio = np.concatenate([silence[:8000], espeak(sentence).astype(np.float32) / 32768, silence[:8000]])
        sentences[sentence] = {e: engines[e].transcribe(audio).text for e in ENGINES}
    out["wer_sentences"] = {e: round(float(np.mean([wer(s, h[e]) for s, h in sentences.items()])), 4)
                            for e in ENGINES} | {"text": sentences}
    return out


def _default_engine(settings) -> str:
    from voiced.engines.factory import faster_whisper_ready

    if settings.stt.engine != "auto":
        return settings.stt.engine
    return "transformers" if faster_whisper_ready(settings) else "faster-whisper"


# ---- text-to-speech ------------------------------------------------------------------
def _stream(engine, text: str) -> tuple[float, float, float]:
    """voiced's path: (first chunk ready, all done, seconds of audio)."""
    t0 = time.perf_counter()
    first, audio_s = None, 0.0
    for chunk in engine.synthesize(text):
        if first is None:
            first = time.perf_counter() - t0
        audio_s += chunk.audio.size / chunk.sample_rate
    return first, time.perf_counter() - t0, audio_s


def bench_tts_engine(engine, naive_whole, repeats: int, budget_s: float, sizes=TTS_SIZES) -> dict:
    """Both paths for replies of `sizes` sentences; stops repeating when over budget_s."""
    _stream(engine, reply_text(1))                     # warm-up, beyond the engine's own
    naive_whole(reply_text(1))
    rows: dict = {n: {"first": [], "total": [], "audio": [], "naive": []} for n in sizes}
    started, done = time.monotonic(), 0
    while done < repeats and (done == 0 or time.monotonic() - started < budget_s):
        for n in sizes:
            first, total, audio_s = _stream(engine, reply_text(n, done))
            rows[n]["first"].append(first)
            rows[n]["total"].append(total)
            rows[n]["audio"].append(audio_s)
            t0 = time.perf_counter()
            naive_whole(reply_text(n, done))           # another text of the same shape: no cache hits
            rows[n]["naive"].append(time.perf_counter() - t0)
        done += 1
    out: dict = {"repeats": done, "replies": {}}
    for n in sizes:
        r = rows[n]
        first, total, naive = summary(r["first"]), summary(r["total"]), summary(r["naive"])
        audio = summary(r["audio"])
        out["replies"][f"{n}_sentences"] = {
            "voiced_first_audio_s": first, "voiced_total_s": total, "audio_s": audio["median"],
            "rtf": ratio(total, audio), "naive_first_audio_s": naive,
            "naive_over_voiced_first_audio": ratio(naive, first)}
    if 1 in sizes and 8 in sizes:
        one, eight = out["replies"]["1_sentences"], out["replies"]["8_sentences"]
        out["first_audio_8_over_1"] = ratio(eight["voiced_first_audio_s"], one["voiced_first_audio_s"])
    return out


def bench_piper(settings, repeats: int, budget_s: float) -> dict:
    from voiced.engines.tts_piper import PiperEngine

    engine = PiperEngine(settings.tts)
    info = engine.load()
    try:
        engine.warmup()
        # The naive path gets the same worker: whole reply, then play.
        result = bench_tts_engine(engine, lambda text: [c for c in engine.synthesize(text)], repeats, budget_s)
    finally:
        engine.close()
    return {"weights": "real (packaged voice)", "model": info.model, "device": info.device, **result}


def _t3_layers(directory: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(directory / "t3_cfg.safetensors"), "pt") as f:
        found = {int(m.group(1)) for k in f.keys()  # noqa: SIM118 - not a dict
                 if (m := re.match(r"tfmr\.layers\.(\d+)\.", k))}
    return max(found) + 1 if found else 30


def bench_chatterbox(settings, repeats: int, budget_s: float, random_dir: Path | None = None,
                     sizes=TTS_SIZES) -> dict:
    """Chatterbox with its real weights, or the random-weight test checkpoint (labelled so)."""
    from voiced.config import ModelsSettings, Settings
    from voiced.engines.tts_chatterbox import ChatterboxEngine
    from voiced.models import chatterbox as weights

    shrink, label = contextlib.nullcontext(), "real"
    if random_dir is not None:
        random_dir = Path(random_dir).expanduser()
        support = _random_support()
        if not (random_dir / "t3_cfg.safetensors").is_file():
            support.build(random_dir)                  # the tests' builder: real architecture, random weights
        layers = _t3_layers(random_dir)
        shrink = support.shrunk_t3(layers)
        label = f"RANDOM (test checkpoint {random_dir}, T3 with {layers} layers): noise, not speech"
        tts = settings.tts.model_copy(update={"engine": "chatterbox", "chatterbox_model": str(random_dir),
                                              "max_speech_tokens": 25, "voice": ""})
        settings = Settings(**{**settings.model_dump(), "tts": tts.model_dump(),
                               "models": ModelsSettings(dir=tempfile.mkdtemp(prefix="voiced-bench-"),
                                                        offline=True).model_dump()})
    elif not weights.status(settings).ready:
        raise Skip("no Chatterbox weights here (voiced models fetch); --chatterbox-random DIR measures the "
                   "code path on the random-weight test checkpoint")
    from voiced.engines.factory import set_torch_threads

    set_torch_threads(settings)
    engine = ChatterboxEngine(settings.tts, settings)
    with shrink:
        info = engine.load()
    engine.warmup()
    t = settings.tts

    def naive_whole(text: str):                        # the spec: generate() on the whole reply
        import torch

        with torch.inference_mode():
            return engine.model.generate(text, exaggeration=t.exaggeration, cfg_weight=t.cfg_weight,
                                         temperature=t.temperature)

    result = bench_tts_engine(engine, naive_whole, repeats, budget_s, sizes)
    notes = []
    if random_dir is not None:
        notes.append("random weights never emit the stop token: every sentence runs to the 25-token cap, "
                     "so a whole-reply generate() makes one capped sentence; totals and ratios say nothing "
                     "about real speech, first-audio shows the per-sentence cost of the code path")
    return {"weights": label, "model": info.model, "device": info.device, "notes": notes, **result}


def _random_support():
    import importlib.util

    from .common import TESTS

    path = TESTS / "support" / "chatterbox_random.py"
    if not path.is_file():
        raise Skip(f"{path} not found: --chatterbox-random needs a source checkout")
    spec = importlib.util.spec_from_file_location("voiced_bench_chatterbox_random", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
