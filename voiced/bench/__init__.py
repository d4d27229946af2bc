"""`voiced bench`: latency, CPU and memory of each stage with the real models, and the whole
voice-to-voice turn on real (virtual) audio devices, beside the naive path of the product spec.

    from voiced.bench import run_bench
    results = run_bench(settings, quick=True, out=None, parts=["wake", "vad", "stt", "tts", "e2e"])

See benchmarks/README.md for what each number means.
"""
from __future__ import annotations


def run_bench(settings, quick: bool, out, parts: list[str], **kwargs) -> dict:
    from .run import run_bench as _run

    return _run(settings, quick, out, parts, **kwargs)


__all__ = ["run_bench"]
