"""Reply levelling: the gain voiced computed before (active RMS of the loudest half of 20 ms
frames, to [audio] output_target_dbfs = -18 dBFS) against ITU-R BS.1770 integrated loudness
through pyloudnorm (to -21 LUFS, the same level on average), on the same speech, in one run.

    .venv/bin/python benchmarks/swap_loudness.py

Each speech clip in tests/data is played at four input levels (peak at full scale, -20, -35,
-45 LUFS) and levelled by each method; the result is measured with BS.1770 (what listeners and
broadcasters use). Printed: the spread of the levelled replies' loudness (max - min and
standard deviation, LU: lower = every reply equally loud) and CPU per second of audio to compute
the gain (best of 3).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiced.audio import dsp  # noqa: E402


def legacy_gain(audio, rate, target_dbfs=-18.0):
    """voiced/audio/playback.py before the swap: dsp.normalize's gain on the first sentence."""
    fixed = dsp.normalize(audio, target_dbfs, rate=rate)
    return float(np.max(np.abs(fixed)) / max(float(np.max(np.abs(audio))), 1e-9))


def new_gain(audio, rate):
    return dsp.loudness_gain(audio, rate, dsp.REPLY_TARGET_LUFS)


def clips():
    for path in sorted((ROOT / "tests/data/speech").glob("*.flac")) + [ROOT / "tests/data/jfk_16k.flac"]:
        audio, rate = sf.read(path, dtype="float32")
        yield path.name, (audio.mean(axis=1) if audio.ndim > 1 else audio), rate


def main() -> int:
    results = {"legacy active-RMS -18 dBFS": [], "pyloudnorm -21 LUFS": []}
    cpu = {k: 0.0 for k in results}
    seconds = 0.0
    for _name, audio, rate in clips():
        meter = pyloudnorm.Meter(rate)
        base = meter.integrated_loudness(audio.astype(np.float64))
        inputs = [audio * (0.98 / np.max(np.abs(audio)))] + [audio * 10 ** ((lv - base) / 20) for lv in (-20, -35, -45)]
        for x in inputs:
            x = x.astype(np.float32)
            seconds += len(x) / rate
            for key, fn in (("legacy active-RMS -18 dBFS", legacy_gain), ("pyloudnorm -21 LUFS", new_gain)):
                best = float("inf")
                for _ in range(3):
                    t0 = time.process_time()
                    g = fn(x, rate)
                    best = min(best, time.process_time() - t0)
                cpu[key] += best
                y = np.clip(x * g, -1, 1)
                results[key].append(meter.integrated_loudness(y.astype(np.float64)))
    print(f"{len(results['pyloudnorm -21 LUFS'])} replies (clips x 4 input levels), {seconds:.0f} s of audio")
    print(f"{'method':<28} {'mean LUFS':>9} {'spread LU':>9} {'std LU':>7} {'cpu ms/s':>9}")
    for key, values in results.items():
        v = np.array(values)
        print(f"{key:<28} {v.mean():9.1f} {v.max() - v.min():9.2f} {v.std():7.2f} {1000 * cpu[key] / seconds:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
