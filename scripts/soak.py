#!/usr/bin/env python3
"""Soak test (not in CI): the real daemon on virtual PulseAudio devices for N minutes of
repeated turns and faults. Prints memory (RSS) and thread counts over time, so growth
shows up. Usage: .venv/bin/python scripts/soak.py --minutes 10 [--out soak.json]

Each cycle: a spoken turn ("hey jarvis" + "what is the time"), a wake word with no request,
and every few cycles a fault: the audio server restarted, the source suspended for a
while, or the config reloaded (SIGHUP).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support.pulse import PulseHarness  # noqa: E402


def proc_status(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"])}


def speech(tmp: Path, name: str, parts: list) -> Path:
    files = []
    for i, part in enumerate(parts):
        f = tmp / f"{name}{i}.wav"
        if isinstance(part, float):
            subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(f), "trim", "0", str(part)], check=True)
        else:
            raw = f.with_suffix(".raw.wav")
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), part], check=True)
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(f)], check=True)
        files.append(str(f))
    out = tmp / f"{name}.wav"
    subprocess.run(["sox", *files, str(out)], check=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    harness = PulseHarness().start()
    tmp = harness.dir
    turn_wav = speech(tmp, "turn", [0.5, "hey jarvis", 0.7, "what is the time", 1.5])
    wake_wav = speech(tmp, "wake", [0.5, "hey jarvis", 1.0])
    env = {**harness.env, "VOICED_VAD__NO_SPEECH_TIMEOUT_S": "3", "VOICED_AUDIO__REOPEN_BACKOFF_MAX_S": "4",
           "VOICED_WEB__ENABLED": "false"}
    daemon = subprocess.Popen([sys.executable, "-m", "voiced", "run"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(x.rstrip()) for x in daemon.stdout], daemon=True).start()
    while not any("listening for" in x for x in lines):
        if daemon.poll() is not None:
            print("\n".join(lines[-30:]))
            return 1
        time.sleep(0.5)
    samples, cycle, faults = [], 0, {"server restart": 0, "source suspended": 0, "reload": 0}
    start = time.monotonic()
    while time.monotonic() - start < args.minutes * 60:
        cycle += 1
        harness.play_into_mic(turn_wav).wait(30)
        time.sleep(9)
        harness.play_into_mic(wake_wav).wait(30)
        time.sleep(5)
        fault = ("server restart", "source suspended", "reload")[cycle % 3] if cycle % 2 == 0 else None
        if fault == "server restart":
            harness.kill()
            time.sleep(3)
            harness.start()
            time.sleep(5)
        elif fault == "source suspended":
            harness.pactl("suspend-source", "mic", "1")
            time.sleep(7)
            harness.pactl("suspend-source", "mic", "0")
            time.sleep(3)
        elif fault == "reload":
            daemon.send_signal(signal.SIGHUP)
            time.sleep(2)
        if fault:
            faults[fault] += 1
        s = {"t_min": round((time.monotonic() - start) / 60, 2), "cycle": cycle, **proc_status(daemon.pid)}
        samples.append(s)
        print(f"{s['t_min']:6.2f} min  cycle {cycle:3d}  RSS {s['rss_mb']:7.1f} MB  threads {s['threads']:3d}"
              f"  {fault or ''}", flush=True)
    answered = sum(bool(re.search(r"turn \d+ .*answered", x)) for x in lines)
    quiet = sum(bool(re.search(r"turn \d+ .*no speech", x)) for x in lines)
    errors = [x for x in lines if " ERROR " in x or "Traceback" in x]
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(30)
    harness.stop()
    first, later = samples[0], samples[len(samples) // 2:]
    summary = {"minutes": args.minutes, "cycles": cycle, "turns_answered": answered, "wake_only_turns": quiet,
               "faults": faults, "error_lines": len(errors), "exit_code": code,
               "rss_mb_first": first["rss_mb"], "rss_mb_last": samples[-1]["rss_mb"],
               "rss_mb_max": max(s["rss_mb"] for s in samples),
               "rss_growth_second_half_mb": round(later[-1]["rss_mb"] - later[0]["rss_mb"], 1),
               "threads_first": first["threads"], "threads_last": samples[-1]["threads"],
               "threads_max": max(s["threads"] for s in samples)}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
