#!/usr/bin/env python3
"""Build the accuracy set: 8 short assistant requests in en/de/fr/es, spoken by espeak-ng voice
variants (two speeds) and Piper (English), clean and with pink, brown and babble noise at
20/10/5 dB SNR. WAVs (16 kHz mono 16-bit) + manifest.json (text, language, voice, condition)
in ${XDG_CACHE_HOME:-~/.cache}/voiced-tests/accuracy/ unless --out. Deterministic: the noise is
seeded per file; espeak-ng is deterministic; Piper's own sampling noise may differ by a hair.

    .venv/bin/python scripts/make_accuracy_set.py [--out DIR] [--languages en,de] [--requests 8] [--force]

Measuring it: `voiced bench --parts accuracy` (docs/performance.md)."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiced.bench import accuracy  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=accuracy.default_dir())
    ap.add_argument("--languages", default=",".join(accuracy.LANGUAGES))
    ap.add_argument("--requests", type=int, default=8, choices=range(1, 9), metavar="1-8")
    ap.add_argument("--force", action="store_true", help="rebuild even if a complete set is there")
    ap.add_argument("--config", help="voiced config file (its [tts] piper_voice speaks the Piper requests)")
    args = ap.parse_args(argv)
    from voiced.config import load_settings

    settings, _ = load_settings(args.config)
    languages = tuple(x.strip() for x in args.languages.split(",") if x.strip())
    unknown = set(languages) - set(accuracy.LANGUAGES)
    if unknown:
        ap.error(f"unknown languages {sorted(unknown)}; choose from {','.join(accuracy.LANGUAGES)}")
    manifest = accuracy.build_set(args.out, settings, languages=languages, requests=args.requests,
                                  force=args.force, echo=print)
    files = manifest["files"]
    print(f"{len(files)} files in {args.out} (built {manifest['built']})")
    for (lang, voice), n in sorted(Counter((f["language"], f["voice"]) for f in files).items()):
        print(f"  {lang}  {voice:<24} {n} files")
    speech = [f["speech_s"] for f in files if f["condition"] == "clean"]
    print(f"speech {min(speech):.1f}-{max(speech):.1f} s per request; conditions: {', '.join(manifest['spec']['conditions'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
