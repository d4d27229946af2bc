"""The always-on half: wake word (delay, idle CPU, RSS) and end-of-speech detection (VAD).

Delays are measured in audio time (the detectors count samples, as in the daemon) plus the
compute time of the frame that decided, so they are what a user would wait for. Idle CPU and
RSS come from a separate process that runs only the listen loop (a capture-like thread that
delivers a frame every 80 ms in real time + the wake word detector), as the daemon does while
nobody speaks: the bench's own process has Whisper and friends loaded, which would skew both.
"""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import numpy as np

from .common import (
    FRAME,
    RATE,
    espeak,
    frames,
    noise,
    proc_rss_mb,
    speech_bounds,
    summary,
)

WAKE_VARIANTS = (("en-us", 160), ("en-gb", 160), ("en-us", 140), ("en-gb", 175), ("en-us", 175), ("en-gb", 140))
REQUESTS = ("What time is it?", "Turn off the kitchen lights, please.", "What's the weather like tomorrow?",
            "Set a timer for ten minutes.", "Play some music in the living room.", "Tell me a joke.")


def _assets(settings):
    from voiced.models.openwakeword_assets import assets_dir

    return assets_dir(settings)


def bench_wake(settings, repeats: int, idle_s: float) -> dict:
    from voiced.triggers.wakeword import WakeWordDetector

    det = WakeWordDetector(settings.wake, _assets(settings))
    delays, audio_delays, frame_ms, misses = [], [], [], []
    for i in range(repeats + 1):                       # the first run is the warm-up
        voice, speed = WAKE_VARIANTS[i % len(WAKE_VARIANTS)]
        phrase = espeak("hey jarvis", voice, speed)
        lead = 1.0 + (i * 0.017) % 0.08                # move the phrase across the 80 ms frame grid
        audio = np.concatenate([noise(lead, seed=i), phrase, noise(1.5, seed=100 + i)])
        end = lead + speech_bounds(phrase)[1]
        det.reset()
        base = det.audio_time_s                        # the detector's audio clock runs on across clips
        hit = None
        for frame in frames(audio):
            t0 = time.perf_counter()
            hit = det.process(frame)
            spent = time.perf_counter() - t0
            if i:
                frame_ms.append(spent * 1000)
            if hit is not None:
                break
        if i == 0:
            continue
        if hit is None:
            misses.append(f"{voice}@{speed}")
            continue
        audio_delays.append(hit.audio_time_s - base - end)
        delays.append(hit.audio_time_s - base - end + spent)
    idle = idle_listen(settings, idle_s)
    return {
        "model": ",".join(settings.wake.models), "threshold": settings.wake.threshold,
        "detect_delay_s": summary(delays),
        "detect_delay_audio_s": summary(audio_delays),
        "frame_compute_ms": summary(frame_ms),
        "misses": misses,
        "idle_cpu_pct_of_one_core": summary(idle["windows_pct"]),
        "idle_rss_mb": idle["rss_mb"],
        "idle_note": "separate process: capture-like 80 ms real-time frames of a -65 dBFS noise floor "
                     "through WakeWordDetector (+ Silero loaded, as the daemon has it); no Whisper/TTS loaded",
        "note": "delay = firing frame's end - last sample of 'hey jarvis' (2% of peak) + that frame's "
                "compute; negative = fires before the phrase's tail ends",
    }


def idle_listen(settings, seconds: float) -> dict:
    """Run the idle listen loop in a fresh process; its CPU per 1 s window and its RSS."""
    proc = subprocess.run([sys.executable, "-m", "voiced.bench.listen", str(seconds)],
                          input=settings.model_dump_json(), capture_output=True, text=True,
                          timeout=seconds + 120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"idle listen process failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _idle_child(seconds: float) -> dict:
    from voiced.config import Settings
    from voiced.triggers.wakeword import WakeWordDetector
    from voiced.vad import Endpointer, make_vad

    settings = Settings(**json.loads(sys.stdin.read()))
    det = WakeWordDetector(settings.wake, _assets(settings))
    Endpointer(make_vad(settings.vad, _assets(settings)), settings.vad)   # loaded, idle, as in the daemon
    floor = noise(seconds + 5, seed=7)
    q: queue.Queue = queue.Queue(maxsize=64)
    stop = threading.Event()

    def capture():                                    # like PyAudio's blocking read: a frame per 80 ms
        nxt, i = time.monotonic(), 0
        while not stop.is_set():
            nxt += FRAME / RATE
            time.sleep(max(0.0, nxt - time.monotonic()))
            q.put(floor[(i * FRAME) % (len(floor) - FRAME):][:FRAME].copy())
            i += 1

    threading.Thread(target=capture, daemon=True).start()
    warm_end = time.monotonic() + 2.0
    windows, t0, c0 = [], None, None
    end = warm_end + seconds
    while time.monotonic() < end:
        try:
            frame = q.get(timeout=0.5)
        except queue.Empty:
            continue
        det.process(frame)
        now = time.monotonic()
        if now < warm_end:
            continue
        if t0 is None:
            t0, c0 = now, time.process_time()
        elif now - t0 >= 1.0:
            c1 = time.process_time()
            windows.append(100.0 * (c1 - c0) / (now - t0))
            t0, c0 = now, c1
    stop.set()
    return {"windows_pct": windows, "rss_mb": proc_rss_mb()}


def bench_vad(settings, repeats: int) -> dict:
    from voiced.vad import Endpointer, make_vad

    vad = make_vad(settings.vad, _assets(settings))
    ep = Endpointer(vad, settings.vad)
    delays, estimate_err, frame_ms, failures = [], [], [], []
    for i in range(repeats + 1):
        voice, speed = WAKE_VARIANTS[i % len(WAKE_VARIANTS)]
        speech = espeak(REQUESTS[i % len(REQUESTS)], voice, speed)
        lead = 0.3 + (i * 0.023) % 0.08
        audio = np.concatenate([noise(lead, seed=i), speech, noise(settings.vad.silence_s + 3.0, seed=50 + i)])
        end = lead + speech_bounds(speech)[1]
        ep.start()
        result = None
        for frame in frames(audio):
            t0 = time.perf_counter()
            result = ep.feed(frame)
            spent = time.perf_counter() - t0
            if i:
                frame_ms.append(spent * 1000)
            if result is not None:
                break
        if i == 0:
            continue
        if result is None or result.kind.value != "end":
            failures.append(f"{REQUESTS[i % len(REQUESTS)]!r}: {result.kind.value if result else 'no decision'}")
            continue
        delays.append(result.event.time_s - end + spent)
        estimate_err.append(result.event.speech_end_s - end)
    return {
        "engine": vad.name, "silence_s": settings.vad.silence_s,
        "end_detect_delay_s": summary(delays),
        "end_estimate_error_s": summary(estimate_err),
        "frame_compute_ms": summary(frame_ms),
        "failures": failures,
        "note": "delay = decision (audio time) + compute - last sample of the request; the configured "
                "silence_s is most of it. estimate error = the end the daemon back-dates to - true end",
    }


if __name__ == "__main__":
    print(json.dumps(_idle_child(float(sys.argv[1]))))
