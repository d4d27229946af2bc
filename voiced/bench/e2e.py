"""Voice-to-voice with the real daemon (`voiced run`) on a private PulseAudio server.

The harness is the tests' (tests/support/pulse.py, loaded by path: a source checkout is
needed): the virtual microphone is the null sink mic16 (the daemon records its monitor), the
speaker is the null sink spk. Each turn plays "hey jarvis" + a Piper-voiced request into mic16.

Measurement: parec records mic16.monitor (what the daemon hears) and spk.monitor (what it
says) for the whole run. A reader thread per recording notes when each block arrives, which
puts every sample on this process's monotonic clock: sample n was captured no later than
min over blocks of (arrival - samples after n in that block / rate); both recordings come from
the same server clock, so they line up to within a few ms. Voice-to-voice = first reply
sample on the speaker (energy above -45 dBFS in 20 ms frames) - last request sample in the
mic (same rule). The daemon's own logged voice_to_voice (from its VAD-estimated end of speech
to the moment playback was handed the first chunk) is reported beside it.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .common import RATE, TESTS, Skip, children, cpu_share, espeak, proc_rss_mb, summary

SPK_RATE = 24_000
FLOOR_DBFS = -45.0
FRAME_S = 0.02
REQUEST = "What time is it?"
# Barge-in trials: the echo responder repeats this (~6 s of reply); the wake word cuts it.
LONG_REQUEST = ("Please repeat after me: the old lighthouse keeper counted every ship that passed "
                "by at night and wrote their names in a big blue book.")


def _pulse_support():
    path = TESTS / "support" / "pulse.py"
    if not path.is_file():
        raise Skip(f"{path} not found: the e2e part needs a source checkout (tests/support)")
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        if not shutil.which(tool):
            raise Skip(f"{tool} is not installed (scripts/setup.sh --test installs the PulseAudio tools)")
    spec = importlib.util.spec_from_file_location("voiced_bench_pulse", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder:
    """parec of one source into memory, with each block's arrival time."""

    def __init__(self, env: dict, source: str, rate: int):
        self.rate, self.blocks, self.data = rate, [], bytearray()
        self.proc = subprocess.Popen(["parec", "-d", source, f"--rate={rate}", "--channels=1", "--format=s16le",
                                      "--raw", "--latency-msec=20"], stdout=subprocess.PIPE, env=env)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        fd = self.proc.stdout.fileno()
        while True:
            block = os.read(fd, 4096)
            if not block:
                return
            self.data += block
            self.blocks.append((time.monotonic(), len(self.data) // 2))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self.thread.join(5)

    def audio(self) -> np.ndarray:
        return np.frombuffer(bytes(self.data[: len(self.data) // 2 * 2]), dtype=np.int16).astype(np.float32) / 32768

    def t0(self) -> float:
        """Monotonic time of sample 0 (tightest bound over all blocks)."""
        return min(t - n / self.rate for t, n in self.blocks)


def loud_frames(audio: np.ndarray, rate: int) -> np.ndarray:
    """Start times (s) of 20 ms frames above the floor."""
    n = int(rate * FRAME_S)
    k = len(audio) // n
    if k == 0:
        return np.zeros(0)
    level = 10 * np.log10(np.mean(audio[: k * n].reshape(k, n) ** 2, axis=1) + 1e-12)
    return np.nonzero(level > FLOOR_DBFS)[0] * FRAME_S


def _request_wav(settings, path: Path, text: str = REQUEST) -> tuple[float, float]:
    """'hey jarvis' (espeak) + pause + the request (Piper voice) + silence; (length, request end) in s."""
    from voiced.audio.decode import write_wav
    from voiced.audio.dsp import resample
    from voiced.engines.tts_piper import PiperEngine

    engine = PiperEngine(settings.tts)
    engine.load()
    try:
        chunks = list(engine.synthesize(text))
    finally:
        engine.close()
    request = resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, RATE)
    parts = [np.zeros(RATE // 2), _wake_audio(), np.zeros(int(0.7 * RATE)), request, np.zeros(2 * RATE)]
    audio = np.concatenate(parts).astype(np.float32)
    write_wav(path, audio, RATE)
    return audio.size / RATE, sum(p.size for p in parts[:4]) / RATE


def _wake_audio() -> np.ndarray:
    return espeak("hey jarvis").astype(np.float32) / 32768


class Daemon:
    def __init__(self, env: dict, cwd: Path, config: str | None):
        args = [sys.executable, "-m", "voiced"] + (["--config", str(config)] if config else []) + ["run"]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[int, re.Match]:
        """(index of the first log line from `start` on that matches, its match)."""
        regex, end = re.compile(pattern), time.monotonic() + timeout
        while time.monotonic() < end:
            for i, line in enumerate(self.lines[start:], start):
                if m := regex.search(line):
                    return i, m
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.05)
        raise TimeoutError(f"no daemon log line matching {pattern!r} in {timeout:.0f} s:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_e2e(settings, turns: int, idle_s: float, config: str | None = None, barge_trials: int = 3,
              extra_env: dict | None = None) -> dict:
    pulse = _pulse_support()
    harness = pulse.PulseHarness().start()
    tmp = Path(tempfile.mkdtemp(prefix="voiced-bench-e2e-"))
    daemon = recorders = None
    try:
        wav = tmp / "turn.wav"
        length, request_end = _request_wav(settings, wav)
        # The harness's virtual devices are the server's defaults; no web port or keyboard is needed.
        env = {**os.environ, **harness.env, "VOICED_AUDIO__INPUT_DEVICE": "default",
               "VOICED_AUDIO__OUTPUT_DEVICE": "default", "VOICED_WEB__ENABLED": "false",
               "VOICED_HOTKEY__ENABLED": "false", **(extra_env or {})}
        started = time.monotonic()
        daemon = Daemon(env, tmp, config)
        daemon.wait_for(r"listening for ", timeout=300)
        ready_s = time.monotonic() - started
        time.sleep(2.0)                                # let start-up work settle
        idle_cpu = [cpu_share(daemon.proc.pid, 1.0) for _ in range(max(1, int(idle_s)))]
        kids = children(daemon.proc.pid)
        rss = {"daemon_mb": proc_rss_mb(daemon.proc.pid),
               "children_mb": round(sum(proc_rss_mb(p) for p in kids), 1), "children": len(kids)}
        recorders = {"mic": Recorder(harness.env, "mic16.monitor", RATE),
                     "spk": Recorder(harness.env, "spk.monitor", SPK_RATE)}
        time.sleep(0.5)
        plays, outcomes, logged = [], [], []
        for _ in range(turns):
            mark = len(daemon.lines)
            plays.append(time.monotonic())
            player = harness.play_into_mic(wav)
            at, m = daemon.wait_for(r"turn \d+ \(wake:[^)]*\) [^:]*:.*", timeout=90, start=mark)
            player.wait(30)
            outcomes.append(m.group(0))
            v2v = re.search(r"voice_to_voice=([\d.]+)s", m.group(0))
            logged.append(float(v2v.group(1)) if v2v and " answered" in m.group(0) else None)
            time.sleep(0.5)
            if any("for a follow-up" in line for line in daemon.lines[at:]):
                # A follow-up window (listening without the wake word) opened: let it close unused.
                daemon.wait_for(r"follow-up window closed", timeout=60, start=at)
            time.sleep(1.0)                            # the wake word's playback tail, then the next turn
        barge = _barge_in_trials(settings, harness, daemon, tmp, barge_trials)
        for r in recorders.values():
            r.stop()
        measured, details = _measure(recorders, plays, length, request_end)
        barge_stop = _measure_barge_in(recorders, barge)
        return {
            "turns": turns, "answered": sum(v is not None for v in logged),
            "voice_to_voice_s": summary([m for m, v in zip(measured, logged) if v is not None]),
            "daemon_logged_voice_to_voice_s": summary(logged),
            "daemon_ready_s": round(ready_s, 2),
            "daemon_stt": next((line.split("speech-to-text: ", 1)[1] for line in daemon.lines
                                if "speech-to-text: " in line), "not logged"),
            "daemon_idle_cpu_pct_of_one_core": summary(idle_cpu),
            "daemon_idle_rss_mb": rss,
            "per_turn": details, "daemon_turn_lines": outcomes,
            "end_of_turn": {what: sum(what in line for line in daemon.lines)
                            for what in ("sounds finished", "sounds unfinished", "of silence",
                                         "answered at the pause", "transcribed at the pause")},
            "vad_env": extra_env or {},
            "barge_in_stop_s": summary([b for b in barge_stop if b is not None]),
            "barge_in_daemon_stop_s": summary([t["daemon_stop_s"] for t in barge if t.get("daemon_stop_s") is not None]),
            "barge_in_trials": len(barge),
            "request": f"'hey jarvis' (espeak) + 0.7 s + '{REQUEST}' (Piper voice)",
            "note": "measured = first reply sample at spk.monitor - last request sample at mic16.monitor, "
                    "both recorded with parec and put on one clock; the daemon's logged figure starts at its "
                    "VAD-estimated end of speech and stops when playback is handed the first chunk",
        }
    finally:
        if recorders:
            for r in recorders.values():
                if r.proc.poll() is None:
                    r.stop()
        if daemon:
            daemon.stop()
        harness.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _barge_in_trials(settings, harness, daemon: Daemon, tmp: Path, trials: int) -> list[dict]:
    """The echo responder reads a long request back; ~1.5 s into that reply "hey jarvis" is
    played into the mic. Returns, per trial, when the wake word was played and the daemon's
    own stop time (stop request -> stream closed)."""
    from voiced.audio.decode import write_wav

    if trials <= 0:
        return []
    ask = tmp / "long.wav"
    _request_wav(settings, ask, LONG_REQUEST)
    wake = tmp / "wake.wav"
    write_wav(wake, np.concatenate([_wake_audio(), np.zeros(RATE)]), RATE)
    out = []
    for _ in range(trials):
        mark = len(daemon.lines)
        harness.play_into_mic(ask).wait(60)
        at, _m = daemon.wait_for(r"responder \w+: echo|turn \d+ .*(rejected|dropped|no speech)", timeout=90, start=mark)
        time.sleep(1.5)   # the reply is playing
        played = time.monotonic()
        harness.play_into_mic(wake)
        trial = {"wake_played": played, "wake_s": _wake_audio().size / RATE, "daemon_stop_s": None}
        try:
            _i, cut = daemon.wait_for(r"playback cut: stopped (\d+) ms", timeout=20, start=at)
            trial["daemon_stop_s"] = int(cut.group(1)) / 1000
            daemon.wait_for(r"turn \d+ \(wake:[^)]*\) no speech", timeout=30, start=at)
        except TimeoutError:
            trial["error"] = "no barge-in"
        out.append(trial)
        time.sleep(1.5)
    return out


def _measure_barge_in(rec: dict, trials: list[dict]) -> list[float | None]:
    """Per trial: end of the reply's sound on the speaker - end of the wake word in the mic."""
    mic, spk = rec["mic"], rec["spk"]
    mic_loud, spk_loud = loud_frames(mic.audio(), RATE), loud_frames(spk.audio(), SPK_RATE)
    mic_t0, spk_t0 = mic.t0(), spk.t0()
    out = []
    for t in trials:
        lo = t["wake_played"] - mic_t0
        wake = mic_loud[(mic_loud >= lo) & (mic_loud < lo + t["wake_s"] + 0.5)]
        if "error" in t or not len(wake):
            out.append(None)
            continue
        wake_end = mic_t0 + wake[-1] + FRAME_S
        end = None
        for start, stop in _runs(spk_loud + spk_t0, gap=0.15):   # the reply's sound under way then
            if start <= wake_end <= stop + 0.25:
                end = stop
        out.append(None if end is None else end - wake_end)
    return out


def _runs(starts: np.ndarray, gap: float) -> list[tuple[float, float]]:
    """Loud-frame start times -> (start, end) runs, bridging gaps up to `gap` s."""
    runs: list[list[float]] = []
    for f in starts:
        if runs and f - runs[-1][1] <= gap:
            runs[-1][1] = f + FRAME_S
        else:
            runs.append([f, f + FRAME_S])
    return [(a, b) for a, b in runs]


def _measure(rec: dict, plays: list[float], length: float, request_end: float):
    mic, spk = rec["mic"], rec["spk"]
    mic_loud, spk_loud = loud_frames(mic.audio(), RATE), loud_frames(spk.audio(), SPK_RATE)
    mic_t0, spk_t0 = mic.t0(), spk.t0()
    out, details = [], []
    for i, played in enumerate(plays):
        # The request ends near request_end into the file; look around there for the last loud mic frame.
        lo, hi = played - mic_t0, played - mic_t0 + request_end + 0.5
        in_turn = mic_loud[(mic_loud >= lo) & (mic_loud < hi)]
        if not len(in_turn):
            out.append(None)
            details.append({"error": "request not found in the mic recording"})
            continue
        end = mic_t0 + in_turn[-1] + FRAME_S
        nxt = plays[i + 1] if i + 1 < len(plays) else float("inf")
        reply = spk_loud[(spk_loud + spk_t0 >= end) & (spk_loud + spk_t0 < nxt)]
        if not len(reply):
            out.append(None)
            details.append({"error": "no reply sound on the speaker"})
            continue
        first = spk_t0 + reply[0]
        out.append(first - end)
        details.append({"voice_to_voice_s": round(first - end, 4),
                        "request_end_after_play_s": round(end - played, 3),
                        "request_end_in_file_s": round(request_end, 3)})
    return out, details
