"""Find and label the pauses in tests/data/speech/ (and tests/data/jfk_16k.flac).

Silero VAD (the project's) finds the silences of >= 0.15 s inside the speech; the project's
Whisper gives word timestamps, and each pause takes the punctuation of the reference
transcript's word before it: sentence_end after . ? !, mid_sentence otherwise. Writes
manifest.json beside the recordings and prints the words around each pause for checking.

    .venv/bin/python scripts/label_pauses.py [--dir tests/data/speech] [--models DIR]
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from fetch_speech_samples import CATALOGUE, DEFAULT_OUT  # noqa: E402

WINDOW = 512            # Silero's window at 16 kHz: 32 ms
ON, OFF = 0.5, 0.35     # speech starts at >= ON, ends below OFF
MIN_PAUSE_S = 0.15
JFK = dict(file="../jfk_16k.flac", package="openai/whisper repository (resampled)",
           member="tests/jfk.flac",
           transcript="And so my fellow Americans, ask not what your country can do for you, "
                      "ask what you can do for your country.",
           licence="US government work (public domain); file from openai/whisper (MIT)",
           speaker="John F. Kennedy, inaugural address, 1961", note="see ../README.md")
SAME = {"mr": "mister", "mrs": "missus", "metres": "meters", "4": "four", "7": "seven",
        "8": "eight", "10": "ten"}


def norm(word: str) -> str:
    w = re.sub(r"[^a-z0-9']", "", word.lower())
    return SAME.get(w, w)


def speech_segments(audio: np.ndarray, vad) -> list[tuple[float, float]]:
    vad.reset()
    segs, start = [], None
    for i in range(0, len(audio) - WINDOW + 1, WINDOW):
        p = vad.probability(audio[i:i + WINDOW])
        t = i / 16000
        if start is None and p >= ON:
            start = t
        elif start is not None and p < OFF:
            segs.append((start, t))
            start = None
    if start is not None:
        segs.append((start, len(audio) / 16000))
    return segs


def label(entry: dict, path: Path, vad, whisper) -> dict:
    audio, sr = sf.read(str(path), dtype="int16")
    if sr != 16000 or audio.ndim != 1:
        sys.exit(f"label_pauses: {path} is not 16 kHz mono")
    segs = speech_segments(audio, vad)
    if not segs:
        sys.exit(f"label_pauses: no speech found in {path}")
    words = [w for s in whisper.transcribe(audio.astype(np.float32) / 32768.0, language="en",
                                           word_timestamps=True, beam_size=5)[0]
             for w in s.words]
    ref = entry["transcript"].split()
    # whisper word index -> reference word index, via the matching blocks of the two
    match, j = {}, None
    sm = difflib.SequenceMatcher(None, [norm(w.word) for w in words], [norm(w) for w in ref],
                                 autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            match[a + k] = b + k
    pauses = []
    for (_, end), (nxt, _) in zip(segs, segs[1:]):
        if nxt - end < MIN_PAUSE_S:
            continue
        before = [i for i, w in enumerate(words) if (w.start + w.end) / 2 < end]
        j = next((match[i] for i in reversed(before) if i in match), None)
        after_word = ref[j] if j is not None else ""
        punct = re.sub(r"[\w'\-]", "", after_word)
        pauses.append(dict(
            start=round(end, 3), end=round(nxt, 3), length=round(nxt - end, 3),
            label="sentence_end" if re.search(r"[.?!]", punct) else "mid_sentence",
            punct=punct, after=after_word,
            before=ref[j + 1] if j is not None and j + 1 < len(ref) else ""))
    return dict(
        file=entry["file"], transcript=entry["transcript"],
        ends="sentence_end" if entry["transcript"][-1] in ".?!" else "mid_sentence",
        source=dict(package=entry["package"], path=entry["member"]),
        licence=entry["licence"], speaker=entry["speaker"],
        duration_s=round(len(audio) / 16000, 3),
        speech_start_s=round(segs[0][0], 3), speech_end_s=round(segs[-1][1], 3),
        pauses=pauses, whisper_text=" ".join(w.word.strip() for w in words))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--models", type=Path, help="voiced models dir (default: as voiced finds it)")
    args = ap.parse_args()
    from faster_whisper import WhisperModel
    from voiced.config import Settings, models_dir
    from voiced.vad import SileroVad

    models = args.models or models_dir(Settings())
    for need in (models / "openwakeword" / "silero_vad.onnx", models / "whisper" / "base-ct2"):
        if not need.exists():
            sys.exit(f"label_pauses: {need} is missing: run `voiced models fetch`")
    vad = SileroVad(models / "openwakeword" / "silero_vad.onnx")
    whisper = WhisperModel(str(models / "whisper" / "base-ct2"), device="cpu",
                           compute_type="int8", cpu_threads=2)
    out = []
    for entry in [JFK, *CATALOGUE]:
        path = args.dir / entry["file"]
        if not path.is_file():
            sys.exit(f"label_pauses: {path} is missing: run scripts/fetch_speech_samples.py")
        rec = label(entry, path, vad, whisper)
        out.append(rec)
        print(f"{rec['file']}: {rec['duration_s']} s, speech {rec['speech_start_s']}-"
              f"{rec['speech_end_s']}, ends {rec['ends']}\n  whisper: {rec['whisper_text']}")
        for p in rec["pauses"]:
            print(f"  {p['start']:6.2f}-{p['end']:6.2f} ({p['length']:.2f} s) {p['label']:12} "
                  f"...{p['after']} | {p['before']}...")
    manifest = dict(
        about="Real human speech with pauses; see README.md here for sources and method.",
        method=dict(vad="silero v4 (voiced.vad.SileroVad)", window_s=WINDOW / 16000,
                    on=ON, off=OFF, min_pause_s=MIN_PAUSE_S, words="faster-whisper base"),
        recordings=out)
    (args.dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {args.dir / 'manifest.json'}")


if __name__ == "__main__":
    main()
