"""Streaming resampler: voiced's own (scipy resample_poly with context, the code before the
swap) against python-soxr's ResampleStream and PyAV's AudioResampler (libswresample), all
fed the same audio in the same chunks, in one run.

    .venv/bin/python benchmarks/swap_resampler.py [--chunk-ms 80] [--seconds 10] [--quick]

Per rate pair it prints:
  cpu ms/s   CPU time (process_time) per second of audio, best of 3, chunked like the capture
  sweep SNR  a log sine sweep (50 Hz -> 0.85 x the lower Nyquist, 0.5 FS) against the exact
             sweep evaluated at the output rate, best integer alignment, edges dropped
  delay ms   mean audio held back over 12 chunks (what a stream adds to the mic -> wake word
             and the reply -> speaker paths)
  alias/img  down: worst output level of tones between 1.1 x the output Nyquist and 0.95 x the
             input Nyquist (what the anti-alias filter lets fold back), dB re input;
             up: worst energy above the input Nyquist for in-band tones (imaging), dB re tone
"""
from __future__ import annotations

import argparse
import sys
import time
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import chirp, resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RATES = (16_000, 24_000, 44_100, 48_000)


class LegacyStreamResampler:
    """voiced/audio/dsp.py's StreamResampler before the swap (commit 88bf368), verbatim."""

    def __init__(self, src_rate: int, dst_rate: int, context: int = 64):
        self.src, self.dst = int(src_rate), int(dst_rate)
        g = gcd(self.src, self.dst)
        self.up, self.down = self.dst // g, self.src // g
        self.pad = self.down * -(-context // self.down)
        self._buf = np.zeros(self.pad, dtype=np.float32)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if self.src == self.dst:
            return chunk.astype(np.float32, copy=False)
        self._buf = np.concatenate([self._buf, chunk.astype(np.float32, copy=False)])
        core = ((len(self._buf) - 2 * self.pad) // self.down) * self.down
        if core <= 0:
            return np.zeros(0, dtype=np.float32)
        out = resample_poly(self._buf[: core + 2 * self.pad], self.up, self.down)
        start = self.pad * self.up // self.down
        self._buf = self._buf[core:]
        return out[start: start + core * self.up // self.down].astype(np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)   # it had none: the held-back tail was dropped


class Soxr:
    def __init__(self, src, dst, quality="HQ"):
        import soxr
        self.s = soxr.ResampleStream(src, dst, 1, dtype="float32", quality=quality)

    def process(self, chunk):
        return self.s.resample_chunk(chunk.astype(np.float32, copy=False))

    def flush(self):
        return self.s.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


class PyAV:
    def __init__(self, src, dst):
        import av
        self.av, self.src = av, src
        self.r = av.AudioResampler(format="flt", layout="mono", rate=dst)

    def _run(self, frame):
        out = [f.to_ndarray().reshape(-1) for f in self.r.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def process(self, chunk):
        frame = self.av.AudioFrame.from_ndarray(chunk.astype(np.float32, copy=False)[None, :],
                                                format="flt", layout="mono")
        frame.sample_rate = self.src
        return self._run(frame)

    def flush(self):
        return self._run(None)


def current():
    """voiced's StreamResampler as it is in this checkout (after the swap)."""
    from voiced.audio.dsp import StreamResampler
    return StreamResampler


METHODS = {"legacy resample_poly": LegacyStreamResampler, "soxr HQ": Soxr,
           "soxr VHQ": lambda s, d: Soxr(s, d, "VHQ"), "pyav swr": PyAV}


def stream(make, src, dst, x, chunk):
    r = make(src, dst)
    parts = [r.process(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    parts.append(r.flush())
    return np.concatenate(parts)


def cpu_ms_per_s(make, src, dst, seconds, chunk_ms, repeats=3):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(src * seconds))).astype(np.float32)
    chunk = src * chunk_ms // 1000
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        stream(make, src, dst, x, chunk)
        best = min(best, time.process_time() - t0)
    return 1000 * best / seconds


def sweep_snr(make, src, dst, chunk_ms, seconds=3.0):
    f1 = 0.85 * min(src, dst) / 2
    x = (0.5 * chirp(np.arange(int(src * seconds)) / src, 50, seconds, f1, method="logarithmic")).astype(np.float32)
    out = stream(make, src, dst, x, src * chunk_ms // 1000).astype(np.float64)
    ref = 0.5 * chirp(np.arange(int(dst * seconds)) / dst, 50, seconds, f1, method="logarithmic")
    edge = int(0.2 * dst)
    best = -np.inf
    for lag in range(-64, 65):   # best integer alignment (any fixed delay is free)
        a = out[edge + lag: len(ref) - edge + lag]
        b = ref[edge: len(ref) - edge]
        if len(a) != len(b) or edge + lag < 0:
            continue
        best = max(best, 10 * np.log10(np.sum(b ** 2) / max(np.sum((a - b) ** 2), 1e-30)))
    return best


def delay_ms(make, src, dst, chunk_ms, chunks=12):
    r = make(src, dst)
    chunk = src * chunk_ms // 1000
    got = sum(len(r.process(np.zeros(chunk, dtype=np.float32))) for _ in range(chunks))
    return 1000 * (chunks * chunk * dst / src - got) / dst


def whole_legacy(x, src, dst):
    g = gcd(src, dst)
    return resample_poly(x, dst // g, src // g).astype(np.float32)


def whole_soxr(x, src, dst):
    import soxr
    return soxr.resample(x, src, dst, quality="HQ")


def whole_pyav(x, src, dst):
    r = PyAV(src, dst)
    return np.concatenate([r.process(x), r.flush()])


WHOLE = {"legacy resample_poly": whole_legacy, "soxr HQ": whole_soxr, "pyav swr": whole_pyav}


def whole_signal(pairs, seconds):
    """dsp.resample(): one call on a whole clip (TTS sentences, uploads)."""
    print(f"\nwhole-signal resample(), {seconds:g} s clip")
    print(f"{'pair':>13} {'method':<22} {'cpu ms/s':>9} {'sweep SNR dB':>13}")
    rng = np.random.default_rng(0)
    for src, dst in pairs:
        for name, fn in WHOLE.items():
            class Once:   # the stream interface over one whole call, for sweep_snr
                def __init__(self, s, d):
                    self.s, self.d, self.parts = s, d, []

                def process(self, c):
                    self.parts.append(c)
                    return np.zeros(0, dtype=np.float32)

                def flush(self):
                    return fn(np.concatenate(self.parts), self.s, self.d)
            x = (0.1 * rng.standard_normal(int(src * seconds))).astype(np.float32)
            best = float("inf")
            for _ in range(3):
                t0 = time.process_time()
                fn(x, src, dst)
                best = min(best, time.process_time() - t0)
            print(f"{src:>6}->{dst:<6} {name:<22} {1000 * best / seconds:9.2f} {sweep_snr(Once, src, dst, 80):13.1f}",
                  flush=True)


def tone(freq, rate, seconds=1.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def alias_or_image_db(make, src, dst, chunk_ms):
    chunk = src * chunk_ms // 1000
    worst = -np.inf
    if dst < src:   # anti-aliasing: tones the output cannot hold must vanish
        for f in np.linspace(1.1 * dst / 2, 0.95 * src / 2, 6):
            x = tone(f, src)
            y = stream(make, src, dst, x, chunk)[int(0.1 * dst): -int(0.1 * dst)]
            level = 10 * np.log10(max(np.mean(y.astype(np.float64) ** 2), 1e-30) / np.mean(x.astype(np.float64) ** 2))
            worst = max(worst, level)
    else:           # anti-imaging: nothing above the input's Nyquist
        for f in np.linspace(0.1 * src / 2, 0.85 * src / 2, 6):
            x = tone(f, src)
            y = stream(make, src, dst, x, chunk)[int(0.1 * dst): -int(0.1 * dst)].astype(np.float64)
            spec = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
            freqs = np.fft.rfftfreq(len(y), 1 / dst)
            hi = spec[freqs > src / 2 * 1.02].sum()
            worst = max(worst, 10 * np.log10(max(hi, 1e-30) / spec.sum()))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunk-ms", type=int, default=80)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="four rate pairs, 5 s")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated; also 'voiced' (this checkout)")
    args = ap.parse_args(argv)
    methods = {m: (current() if m == "voiced" else METHODS[m]) for m in args.methods.split(",")}
    pairs = [(s, d) for s in RATES for d in RATES if s != d]
    if args.quick:
        pairs, args.seconds = [(48_000, 16_000), (44_100, 16_000), (24_000, 48_000), (24_000, 44_100)], 5.0
    print(f"chunk {args.chunk_ms} ms, {args.seconds:g} s of audio per CPU figure (best of 3)")
    print(f"{'pair':>13} {'method':<22} {'cpu ms/s':>9} {'sweep SNR dB':>13} {'alias/img dB':>13} {'delay ms':>9}")
    for src, dst in pairs:
        for name, make in methods.items():
            cpu = cpu_ms_per_s(make, src, dst, args.seconds, args.chunk_ms)
            snr = sweep_snr(make, src, dst, args.chunk_ms)
            ai = alias_or_image_db(make, src, dst, args.chunk_ms)
            lag = delay_ms(make, src, dst, args.chunk_ms)
            print(f"{src:>6}->{dst:<6} {name:<22} {cpu:9.2f} {snr:13.1f} {ai:13.1f} {lag:9.1f}", flush=True)
    whole_signal(pairs, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
