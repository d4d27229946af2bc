"""STT and TTS, each beside the naive path of the product spec, in the same run.

STT naive path: `transformers.pipeline("automatic-speech-recognition", model=DIR)` called with
a file path and no other arguments (ffmpeg decodes the file on every call; default generation,
fp32, and for a multilingual model a language-detection pass). voiced's path: WhisperSTT as
the daemon builds it (make_stt), on a float32 numpy array.

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
def bench_stt(settings, repeats: int, lengths=STT_LENGTHS_S) -> dict:
    from transformers import pipeline

    from voiced.audio.decode import write_wav
    from voiced.engines.factory import make_stt
    from voiced.models.whisper import resolve

    speech = jfk()
    onset = int(speech_bounds(speech)[0] * RATE)
    long = np.tile(speech[onset:], 4)                  # cut/concatenated jfk: any length up to 40 s
    clips = {n: long[: n * RATE] for n in lengths}
    stt, info = make_stt(settings)
    stt.warmup()
    model_dir = resolve(settings)[0]
    naive = pipeline("automatic-speech-recognition", model=model_dir)    # the spec's call, verbatim
    out: dict = {"engine": info.name, "model": info.model, "device": info.device, "source": info.source,
                 "naive_device": str(getattr(naive, "device", "?")), "lengths": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n, clip in clips.items():
            files[n] = Path(tmp) / f"speech-{n}s.wav"
            write_wav(files[n], clip, RATE)
        first = min(lengths)
        stt.transcribe(clips[first])                   # warm-up: one call each, not timed
        naive(str(files[first]))
        times: dict = {n: {"voiced": [], "naive": []} for n in lengths}
        for _ in range(repeats):
            for n in lengths:                          # interleaved: both paths see the same noise
                t0 = time.perf_counter()
                stt.transcribe(clips[n])
                times[n]["voiced"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                naive(str(files[n]))
                times[n]["naive"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        heard = stt.transcribe(speech)
        jfk_voiced_s = time.perf_counter() - t0
        jfk_file = Path(tmp) / "jfk.wav"
        write_wav(jfk_file, speech, RATE)
        t0 = time.perf_counter()
        heard_naive = naive(str(jfk_file))
        jfk_naive_s = time.perf_counter() - t0
    for n in lengths:
        v, nv = summary(times[n]["voiced"]), summary(times[n]["naive"])
        out["lengths"][f"{n}s"] = {"audio_s": n, "voiced_s": v, "naive_s": nv,
                                   "rtf_voiced": ratio(v, n), "rtf_naive": ratio(nv, n),
                                   "naive_over_voiced": ratio(nv, v)}
    out["wer_jfk"] = {"voiced": wer(JFK_REFERENCE, heard.text), "naive": wer(JFK_REFERENCE, heard_naive["text"]),
                      "voiced_text": heard.text, "naive_text": heard_naive["text"].strip(),
                      "voiced_s": round(jfk_voiced_s, 4), "naive_s": round(jfk_naive_s, 4),
                      "audio_s": round(speech.size / RATE, 2)}
    return out


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
