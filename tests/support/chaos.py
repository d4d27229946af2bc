"""The chaos run (issue 13, "One owner for the turn"): the real daemon (`python -m voiced
--config FILE run`) on a private PulseAudio server, disturbed in random, seeded interleavings
while a sampler checks its health surfaces against the facts.

Disturbances (WEIGHTS): wake-word turns, a wake word alone, hotkey presses (FIFO keyboard),
POST /api/trigger, /api/say, /api/utterance, SIGHUP with changed [vad]/[wake]/[responder]
(and now and then an invalid edit that must be refused), the audio server killed and
restarted, the microphone source suspended, and SIGTERM (then a restart; sometimes a second
SIGTERM while the new process is still starting).

A round is a burst of 1-3 disturbances started at random 0-2.5 s gaps (each in its own
thread, so they overlap: a SIGHUP while the server is down, a SIGTERM mid-turn...), then a
probe: "hey jarvis" + "what time is it" into the microphone, which must be answered within
`turn_bound_s` of the burst's end (server back, source resumed, reload done, restarted daemon
ready). The first rounds deal every kind once (shuffled), so even a short run sees each.

Invariants, checked by a sampler about once a second and by the rounds:
  turn-answered     every probe is answered within turn_bound_s
  healthz-200       /healthz answers 200 {"alive": true} at every sample (not while restarting)
  healthz-mic       input.ok false (stable 2 s) -> /healthz reason mentions the mic; input ok
                    -> it does not say "mic down"
  status-mic        input.ok false (stable 2 s) -> the latest STATUS= contains "MIC DOWN";
                    input ok (stable 2 s) -> it does not; idle with a mic -> "listening for hey_jarvis"
  healthz-state     /healthz state equals /api/status state when that is stable around it;
                    "starting"/"stopping" only while restarting
  state-stuck       no non-idle state lasts longer than state_bound_s (40 s; a request records <= 15 s)
  readyz            GET /readyz: 200 {"ready": true} iff idle, else 503 {"ready": false,
                    "reason": "busy: <state>..."}
  watchdog-pings    WATCHDOG=1 keeps coming (gap <= ping_gap_s), also while the mic is down
  traceback         no log line contains "Traceback"
  sigterm-exit      SIGTERM in any state: exit status 0 within 3 s
  sighup-reload     a valid edit + SIGHUP logs "config reloaded"; an invalid one is refused
                    and the daemon keeps running
  api-error         no 5xx other than 503 from the API; no refused connection while up
  daemon-died       the daemon never exits unless told to
  startup           a (re)started daemon is listening within startup_bound_s
  threads / rss     per process lifetime, from the first answered probe (warm-up) to the
                    end: threads grow by <= max_thread_growth, RSS by <= max_rss_growth_mb
  harness           the run itself could not go on (e.g. the test's audio server did not come back)

All violations are collected (the first of each invariant keeps its detail and the 40 log lines
before it) and the run goes on; after a probe that was not answered the daemon is SIGTERMed and
started afresh, so one wedge does not hide what comes later. CHAOS_FAIL_FAST=1 stops at the first.

Used by tests/test_chaos.py (bounded, CHAOS_MINUTES, default 3) and scripts/chaos.py (--minutes).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from support.pulse import PulseHarness
from test_e2e_daemon import KEY_LEFTCTRL, KEY_SPACE, NotifySocket, free_port, key_events

ROOT = Path(__file__).resolve().parents[2]

# Relative weights of the disturbance kinds after the first deal (each kind once).
WEIGHTS: dict[str, int] = {
    "wake_turn": 3,        # "hey jarvis, what can you do?" (a long reply: later events land on it)
    "wake_only": 2,        # the wake word and nothing after it (no-speech timeout)
    "hotkey": 2,           # Ctrl+Space held while a request is spoken, or just tapped
    "api_trigger": 2,      # POST /api/trigger (nobody speaks, or the next event does)
    "api_say": 2,          # POST /api/say
    "api_utterance": 2,    # POST /api/utterance with a spoken WAV
    "sighup": 3,           # [vad]/[wake]/[responder] changed in the file, SIGHUP
    "sighup_invalid": 1,   # an invalid value, SIGHUP: refused, the running config kept
    "server_restart": 2,   # the audio server killed, down 0.5-8 s, started again
    "suspend_source": 2,   # the microphone source suspended 2-8 s (reads block)
    "sigterm_restart": 1,  # SIGTERM at a random moment (exit 0 within 3 s), then a restart
}
# At most one of each group per burst (they own the process, the server or the config file).
GROUPS = [{"sigterm_restart"}, {"server_restart"}, {"suspend_source"}, {"sighup", "sighup_invalid"}]
KNOWN_STATES = {"starting", "idle", "listening", "transcribing", "thinking", "speaking", "stopping"}
SIGTERM_LIMIT_S = 3.0
ANSWERED = re.compile(r"turn (\d+) \(([^)]*)\) answered: heard (.*?), said ")
SAY_TEXTS = ["The quick brown fox jumps over the lazy dog, again and again, until the sun goes down.",
             "This is a test of the chaos schedule.", "One, two, three, four, five, six, seven, eight."]


@dataclass
class ChaosConfig:
    minutes: float = 3.0                  # the whole run, first start included
    seed: int | None = None               # None: CHAOS_SEED or a random one (printed)
    workdir: Path | None = None           # config, keyboard FIFO, clips, daemon.log
    turn_bound_s: float = 30.0            # a probe is answered within this after the burst
    startup_bound_s: float = 240.0        # a (re)started daemon listens within this
    sample_s: float = 1.0
    ping_gap_s: float = 4.0               # WATCHDOG_USEC=2 s: a ping every ~1 s
    loop_deadline_s: float | None = 3.0  # [watchdog] loop_deadline_s in the file (None: the shipped one)
    max_thread_growth: int = 8
    max_rss_growth_mb: float = 60.0
    state_bound_s: float = 40.0           # longest any one non-idle state may last (max_s is 15 s)
    fail_fast: bool = False
    verbose: bool = False                 # echo the daemon's log
    log: Callable[[str], None] = print

    @classmethod
    def from_env(cls, **kw) -> "ChaosConfig":
        """CHAOS_* environment variables over the defaults; keyword arguments that are not None over both."""
        env, conf = os.environ, {}
        flag = lambda v: v not in ("0", "")   # noqa: E731
        for var, key, conv in (("CHAOS_MINUTES", "minutes", float), ("CHAOS_SEED", "seed", int),
                               ("CHAOS_TURN_BOUND_S", "turn_bound_s", float),
                               ("CHAOS_FAIL_FAST", "fail_fast", flag), ("CHAOS_VERBOSE", "verbose", flag)):
            if env.get(var):
                conf[key] = conv(env[var])
        if "CHAOS_LOOP_DEADLINE_S" in env:   # empty: keep the shipped [watchdog] loop_deadline_s
            conf["loop_deadline_s"] = float(env["CHAOS_LOOP_DEADLINE_S"]) if env["CHAOS_LOOP_DEADLINE_S"] else None
        conf.update({k: v for k, v in kw.items() if v is not None})
        return cls(**conf)


@dataclass
class Violation:
    invariant: str
    detail: str
    at_s: float
    log_tail: list[str]
    count: int = 1


@dataclass
class Lifetime:
    """One daemon process: its start, its warm-up checkpoint and later ones (threads, RSS)."""
    pid: int
    startup_s: float | None = None
    checkpoints: list[tuple[float, int, float]] = field(default_factory=list)   # (t, threads, rss_mb)
    exit: tuple[str, int | None, float] | None = None   # (state when SIGTERM was sent, code, seconds)


@dataclass
class ChaosResult:
    seed: int
    minutes: float
    wall_s: float = 0.0
    rounds: int = 0
    disturbances: Counter = field(default_factory=Counter)
    probes: int = 0
    probes_answered: int = 0
    probe_replays: int = 0
    turns_answered: int = 0
    recoveries: list[tuple[float, str]] = field(default_factory=list)   # (seconds, burst)
    sigterm_exits: list[tuple[str, int | None, float]] = field(default_factory=list)
    lifetimes: list[Lifetime] = field(default_factory=list)
    samples: int = 0
    states_seen: Counter = field(default_factory=Counter)
    mic_down_samples: int = 0
    max_ping_gap_s: float = 0.0
    api_codes: Counter = field(default_factory=Counter)
    error_lines: int = 0
    notes: list[str] = field(default_factory=list)   # unique
    violations: dict[str, Violation] = field(default_factory=dict)
    log_path: str = ""

    def worst_recovery(self) -> tuple[float, str]:
        return max(self.recoveries, default=(0.0, "-"))

    def summary(self) -> str:
        worst, burst = self.worst_recovery()
        rec = sorted(r for r, _ in self.recoveries)
        lines = [
            f"chaos: seed {self.seed} (CHAOS_SEED={self.seed} replays the schedule), {self.minutes:g} min asked, "
            f"{self.wall_s:.0f} s wall, {self.rounds} rounds",
            "disturbances: " + ", ".join(f"{k} {self.disturbances[k]}" for k in WEIGHTS if self.disturbances[k])
            + "".join(f", {k} {v}" for k, v in self.disturbances.items() if k not in WEIGHTS),
            f"turns answered: {self.turns_answered} in all; probes answered {self.probes_answered}/{self.probes} "
            f"({self.probe_replays} replayed)",
            f"recovery (burst end -> probe answered): worst {worst:.1f} s after [{burst}]"
            + (f", median {rec[len(rec) // 2]:.1f} s" if rec else ""),
            "SIGTERM exits: " + (", ".join(f"{s}: rc={c} in {t:.2f} s" for s, c, t in self.sigterm_exits) or "none"),
        ]
        for i, life in enumerate(self.lifetimes):
            cps = life.checkpoints
            mem = (f"threads {cps[0][1]} -> {cps[-1][1]}, RSS {cps[0][2]:.0f} -> {cps[-1][2]:.0f} MB "
                   f"({len(cps)} checkpoints)" if cps else "no checkpoint")
            start = f"{life.startup_s:.1f} s" if life.startup_s is not None else "-"
            lines.append(f"process {i + 1} (pid {life.pid}): ready in {start}; {mem}")
        lines += [
            f"samples: {self.samples} (mic down in {self.mic_down_samples}); states {dict(self.states_seen)}; "
            f"longest watchdog ping gap {self.max_ping_gap_s:.1f} s",
            f"API answers: {dict(self.api_codes)}; ERROR lines in the log: {self.error_lines}",
        ]
        lines += [f"note: {n}" for n in self.notes]
        if self.violations:
            lines.append("INVARIANTS BROKEN: " + ", ".join(f"{v.invariant} (x{v.count})" for v in self.violations.values()))
            for v in self.violations.values():
                lines.append(f"  {v.invariant} x{v.count}, first at {v.at_s:.0f} s: {v.detail}")
        else:
            lines.append("all invariants held")
        lines.append(f"daemon log: {self.log_path}")
        return "\n".join(lines)

    def failure_message(self) -> str:
        parts = [f"chaos invariant(s) broken: {', '.join(self.violations)}", self.summary()]
        for v in sorted(self.violations.values(), key=lambda v: v.at_s):
            parts.append(f"\n--- last 40 daemon log lines when '{v.invariant}' first broke ({v.at_s:.0f} s; "
                         f"repeats collapsed):\n" + "\n".join(collapse(v.log_tail)))
        return "\n".join(parts)


def collapse(lines: list[str]) -> list[str]:
    """Runs of lines that repeat (a traceback per frame) shown once with a count; timestamps ignored."""
    def key(x: str) -> str:
        return re.sub(r"^\d\d:\d\d:\d\d(\.\d+)? ", "", x)
    out: list[str] = []
    i = 0
    while i < len(lines):
        for size in range(1, 21):   # the shortest block that repeats right after itself
            block = [key(x) for x in lines[i:i + size]]
            n = 1
            while [key(x) for x in lines[i + n * size:i + (n + 1) * size]] == block:
                n += 1
            if n > 1:
                out += lines[i:i + size] + [f"    [... the {size} line(s) above repeated {n - 1} more time(s)]"]
                i += n * size
                break
        else:
            out.append(lines[i])
            i += 1
    return out


# -- plumbing ------------------------------------------------------------------
def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 5.0) -> tuple[int | None, object]:
    """(status, parsed JSON or text); status None when nothing answered (refused, timeout)."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, _decode(r.read())
    except urllib.error.HTTPError as e:
        return e.code, _decode(e.read())
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        return None, repr(e)


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def multipart(field_name: str, path: Path) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def proc_status(pid: int) -> tuple[int, float] | None:
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def set_key(text: str, section: str, key: str, value: str) -> tuple[str, bool]:
    """`key = value` (TOML literal) in [section] of a config text; (text, False) if the key is not there."""
    head = re.search(rf"(?m)^\[{re.escape(section)}\]\s*$", text)
    if not head:
        return text, False
    nxt = re.search(r"(?m)^\[", text[head.end():])
    end = head.end() + (nxt.start() if nxt else len(text) - head.end())
    body, n = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", lambda _m: f"{key} = {value}", text[head.end():end], count=1)
    return text[:head.end()] + body + text[end:], bool(n)


def toml_str(s: str) -> str:
    return json.dumps(s)   # a JSON string is a valid TOML basic string


# -- speech clips ------------------------------------------------------------
class Clips:
    """16 kHz mono WAVs: espeak-ng for "hey jarvis" (what the wake tests use), the requests by
    the Piper voice when it loads (Whisper base mishears espeak's "what time is it"), else espeak."""

    def __init__(self, folder: Path, log: Callable[[str], None]):
        self.folder, self.log = folder, log
        folder.mkdir(parents=True, exist_ok=True)
        self.piper = self._load_piper()
        try:
            self.probe = self.build("probe", [0.5, "hey jarvis", 0.7, ("request", "What time is it?"), 2.0])
            self.wake_turn = self.build("wake_turn", [0.5, "hey jarvis", 0.7, ("request", "What can you do?"), 1.5])
            self.wake_only = self.build("wake_only", [0.5, "hey jarvis", 1.0])
            self.date = self.build("date", [0.2, ("request", "What is the date today?"), 0.5])
        finally:
            if self.piper is not None:
                self.piper.close()
                self.piper = None

    def _load_piper(self):
        try:
            from voiced.config import SHIPPED_DEFAULT, load_settings
            from voiced.engines.tts_piper import PiperEngine

            saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("VOICED_") and k != "VOICED_MODELS_DIR"}
            try:
                settings, _ = load_settings(SHIPPED_DEFAULT)
            finally:
                os.environ.update(saved)
            engine = PiperEngine(settings.tts)
            engine.load()
            return engine
        except Exception as exc:   # any failure: espeak speaks the requests instead
            self.log(f"chaos: Piper voice not usable ({exc!r}); requests spoken by espeak-ng")
            return None

    def build(self, name: str, parts: list) -> Path:
        files = []
        for i, part in enumerate(parts):
            f = self.folder / f"{name}-{i}.wav"
            if isinstance(part, float):
                subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(f), "trim", "0", str(part)],
                               check=True, capture_output=True)
                files.append(f)
                continue
            text = part[1] if isinstance(part, tuple) else part
            raw = f.with_suffix(".src.wav")
            if isinstance(part, tuple) and self.piper is not None:
                chunks = list(self.piper.synthesize(text))
                sf.write(raw, np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, subtype="PCM_16")
            else:
                subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True,
                               capture_output=True)
            # -G: guard against clipping while resampling (sox would warn)
            subprocess.run(["sox", "-G", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(f)], check=True,
                           capture_output=True)
            files.append(f)
        out = self.folder / f"{name}.wav"
        subprocess.run(["sox", *map(str, files), str(out)], check=True, capture_output=True)
        return out

    @staticmethod
    def seconds(path: Path) -> float:
        return sf.info(str(path)).duration


# -- the daemon process --------------------------------------------------------
class Daemon:
    def __init__(self, env: dict, config: Path, cwd: Path, sink: Callable[[str], None]):
        self.lines: list[str] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "voiced", "--config", str(config), "run"],
                                     env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._sink = sink
        self.pump = threading.Thread(target=self._pump, name="daemon-log", daemon=True)
        self.pump.start()

    def _pump(self):
        for line in self.proc.stdout:
            line = line.rstrip()
            self.lines.append(line)
            self._sink(line)

    def find(self, regex: re.Pattern | str, start: int = 0) -> re.Match | None:
        regex = re.compile(regex) if isinstance(regex, str) else regex
        for line in self.lines[start:]:
            m = regex.search(line)
            if m:
                return m
        return None


class Keyboard:
    """The writing end of the FIFO the daemon's hotkey reader polls. Kept open (a closed writer
    is a keyboard unplugged for the reader); reopened when the reader is a new process."""

    def __init__(self, path: Path):
        self.path, self.fd, self.lock = path, None, threading.Lock()

    def send(self, data: bytes, timeout: float = 5.0) -> bool:
        with self.lock:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.fd is None:
                    try:
                        self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)   # ENXIO: no reader yet
                    except OSError:
                        time.sleep(0.2)
                        continue
                try:
                    os.write(self.fd, data)
                    return True
                except OSError:   # EPIPE: the reader went away (daemon restarted)
                    self.close()
            return False

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


# -- the run -----------------------------------------------------------------
class Chaos:
    def __init__(self, cfg: ChaosConfig):
        self.cfg = cfg
        seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(1, 2**31)
        self.rng = random.Random(seed)
        self.result = ChaosResult(seed=seed, minutes=cfg.minutes)
        self.log = cfg.log
        self.t_start = time.monotonic()
        self.deadline = self.t_start + cfg.minutes * 60
        self.all_lines: list[str] = []
        self.lock = threading.RLock()
        self.down = True         # no daemon to sample: starting, restarting, stopping
        self.epoch = 0           # bumped whenever `down` changes: a sample that crossed one is dropped
        self.stop_sampler = threading.Event()
        self.daemon: Daemon | None = None
        self.life: Lifetime | None = None
        self.history: deque = deque(maxlen=30)   # (t, state, input_ok) of recent samples
        self.last_state = "starting"
        self.state_since: tuple = (None, 0.0)   # (state, first sample in it)
        self.scanned = 0
        self.expected_exit = False
        self.up_since = time.monotonic()
        self._last_live: dict = {}

    # -- bookkeeping -------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t_start

    def violate(self, invariant: str, detail: str) -> None:
        with self.lock:
            v = self.result.violations.get(invariant)
            if v:
                v.count += 1
                return
            self.result.violations[invariant] = Violation(invariant, detail, self.now(), self.all_lines[-40:])
        self.log(f"chaos: INVARIANT BROKEN [{invariant}] at {self.now():.0f} s: {detail}")

    def note(self, text: str) -> None:
        if text not in self.result.notes:
            self.result.notes.append(text)

    def _sink(self, line: str) -> None:
        self.all_lines.append(line)
        self._logfile.write(line + "\n")
        self._logfile.flush()
        if self.cfg.verbose:
            print("daemon:", line, file=sys.stderr)

    def set_down(self, down: bool) -> None:
        with self.lock:
            self.down = down
            self.epoch += 1
            if not down:
                self.up_since = time.monotonic()
            self.history.clear()
            self.state_since = (None, 0.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kw) -> tuple[int | None, object]:
        epoch = self.epoch
        code, body = http(method, self.url + path, **kw)
        with self.lock:
            expected_gap = self.down or self.epoch != epoch
        self.result.api_codes[f"{path} {code}"] += 1
        if code is None and not expected_gap:
            self.violate("api-error", f"{method} {path}: no answer while the daemon was up: {body}")
        elif code is not None and code >= 500 and code != 503:
            self.violate("api-error", f"{method} {path} -> {code}: {body}")
        return code, body

    # -- setup -------------------------------------------------------------
    def _write_config(self, live: dict[tuple[str, str], str]) -> None:
        text = self.base_config
        for (section, key), value in live.items():
            text, ok = set_key(text, section, key, value)
            if not ok:
                self.note(f"[{section}] {key} is not in config/voiced.toml: left out")
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)

    def _setup(self) -> None:
        work = self.cfg.workdir
        work.mkdir(parents=True, exist_ok=True)
        self.result.log_path = str(work / "daemon.log")
        self._logfile = open(work / "daemon.log", "w")
        self.clips = Clips(work / "clips", self.log)
        self.keyboard_path = work / "kbd-event0"
        if not self.keyboard_path.exists():
            os.mkfifo(self.keyboard_path)
        self.keyboard = Keyboard(self.keyboard_path)
        self.port = free_port()
        fixed = {("vad", "no_speech_timeout_s"): "3.0", ("audio", "read_timeout_s"): "2.0",
                 ("audio", "reopen_backoff_max_s"): "2.0", ("hotkey", "enabled"): "true",
                 ("hotkey", "key"): toml_str("KEY_LEFTCTRL+KEY_SPACE"),
                 ("hotkey", "devices"): json.dumps([str(self.keyboard_path)]),
                 ("web", "port"): str(self.port), ("responder", "timeout_s"): "3.0"}
        if self.cfg.loop_deadline_s is not None:
            fixed[("watchdog", "loop_deadline_s")] = repr(float(self.cfg.loop_deadline_s))
        text = (ROOT / "config" / "voiced.toml").read_text()
        for (section, key), value in fixed.items():
            text, ok = set_key(text, section, key, value)
            if not ok:
                self.note(f"[{section}] {key} is not in config/voiced.toml: left out")
        self.base_config = text
        self.config = work / "voiced.toml"
        self._write_config({})
        self.harness = PulseHarness().start()
        self.notify = NotifySocket(work / "notify.sock")
        # Everything else comes from the file (so SIGHUP edits are not shadowed by VOICED_* vars).
        self.env = {k: v for k, v in self.harness.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
        self.env.update(NOTIFY_SOCKET=str(self.notify.path), WATCHDOG_USEC="2000000", PYTHONUNBUFFERED="1")

    # -- process lifetimes ---------------------------------------------------
    def spawn(self) -> bool:
        """Start a daemon and wait until it listens (READY=1). False if it did not come up."""
        self.set_down(True)
        self.keyboard.close()
        self.expected_exit = False
        t0 = time.monotonic()
        self.daemon = d = Daemon(self.env, self.config, self.cfg.workdir, self._sink)
        self.life = Lifetime(pid=d.proc.pid)
        self.result.lifetimes.append(self.life)
        end = t0 + self.cfg.startup_bound_s
        while time.monotonic() < end:
            ready = any(t > t0 and f == "READY=1" for t, f in self.notify.messages[-50:])
            if ready and d.find("listening for"):
                self.life.startup_s = time.monotonic() - t0
                self.set_down(False)
                return True
            if d.proc.poll() is not None:
                self.violate("daemon-died", f"exited with {d.proc.returncode} while starting")
                return False
            time.sleep(0.2)
        self.violate("startup", f"not listening (READY=1 + 'listening for') {self.cfg.startup_bound_s:.0f} s after start")
        return False

    def sigterm(self, why: str) -> None:
        """SIGTERM now, in whatever state; exit status 0 within 3 s."""
        d = self.daemon
        state = "starting"
        if not self.down:   # the state right now (the sampler's last one if the API does not say)
            code, st = http("GET", self.url + "/api/status", timeout=1)
            state = st.get("state", self.last_state) if code == 200 and isinstance(st, dict) else self.last_state
        with self.lock:
            self.expected_exit = True
        self.set_down(True)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        try:
            code = d.proc.wait(SIGTERM_LIMIT_S)
        except subprocess.TimeoutExpired:
            try:
                code = d.proc.wait(20)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                code = d.proc.wait(10)
        took = time.monotonic() - t0
        label = f"{why}/{state}"
        self.result.sigterm_exits.append((label, code, took))
        self.life.exit = (label, code, took)
        self.log(f"chaos:   SIGTERM ({label}): exit {code} in {took:.2f} s")
        if code != 0 or took > SIGTERM_LIMIT_S:
            self.violate("sigterm-exit", f"SIGTERM while {label}: exit status {code} after {took:.2f} s "
                                         f"(want 0 within {SIGTERM_LIMIT_S:g} s)")
        d.pump.join(5)

    def restart(self) -> bool:
        # Now and then a process is SIGTERMed while still starting (web up, models loading) first.
        if self.rng.random() < 0.25:
            self.result.disturbances["sigterm_while_starting"] += 1
            if not self._spawn_and_term_early():
                return False
        return self.spawn()

    def _spawn_and_term_early(self) -> bool:
        """Start a daemon and SIGTERM it as soon as
        its web server answers (signal handlers are installed by then), before it is ready."""
        self.set_down(True)
        self.keyboard.close()
        t0 = time.monotonic()
        self.daemon = d = Daemon(self.env, self.config, self.cfg.workdir, self._sink)
        self.life = Lifetime(pid=d.proc.pid)
        self.result.lifetimes.append(self.life)
        while time.monotonic() - t0 < 60:
            code, _ = http("GET", self.url + "/healthz", timeout=1)
            if code is not None or d.proc.poll() is not None:
                break
            time.sleep(0.1)
        if d.proc.poll() is not None:
            self.violate("daemon-died", f"exited with {d.proc.returncode} while starting")
            return False
        time.sleep(self.rng.uniform(0, 2.0))
        self.last_state = "starting"
        self.sigterm("starting")
        return True

    # -- the sampler -----------------------------------------------------------
    def _sampler(self) -> None:
        while not self.stop_sampler.wait(self.cfg.sample_s):
            try:
                self._sample()
            except Exception as exc:   # the sampler itself must not die silently
                self.violate("sampler", f"sampler crashed: {exc!r}")

    def _scan_log(self) -> None:
        lines = self.all_lines
        for i in range(self.scanned, len(lines)):
            line = lines[i]
            if "Traceback" in line:
                self.violate("traceback", f"{lines[i - 1] if i else ''} / {line}")
            if " ERROR " in line or line.startswith("ERROR"):
                self.result.error_lines += 1
        self.scanned = len(lines)

    def _sample(self) -> None:
        self._scan_log()
        d = self.daemon
        if d is None:
            return
        with self.lock:
            down, epoch, expected = self.down, self.epoch, self.expected_exit
        if d.proc.poll() is not None and not expected and not down:
            self.violate("daemon-died", f"exited with {d.proc.returncode} unasked")
            return
        if down:
            return
        t = time.monotonic()
        c1, s1 = http("GET", self.url + "/api/status")
        ch, h = http("GET", self.url + "/healthz")
        cr, r = http("GET", self.url + "/readyz")
        c2, s2 = http("GET", self.url + "/api/status")
        status_field = next((f for _, f in reversed(self.notify.messages) if f.startswith("STATUS=")), "")
        pings = [tp for tp, f in self.notify.messages[-200:] if f == "WATCHDOG=1"]
        with self.lock:
            if self.down or self.epoch != epoch:
                return   # a restart began meanwhile
        self.result.samples += 1
        if c1 != 200 or c2 != 200 or not isinstance(s1, dict) or not isinstance(s2, dict):
            self.violate("api-error", f"GET /api/status -> {c1}/{c2}: {s1 if c1 != 200 else s2}")
            return
        st1, st2 = s1.get("state"), s2.get("state")
        ok1, ok2 = (s1.get("input") or {}).get("ok"), (s2.get("input") or {}).get("ok")
        self.last_state = st2
        self.result.states_seen[st2] += 1
        if ok2 is False:
            self.result.mic_down_samples += 1
        self.history.append((t, st2, ok1 if ok1 == ok2 else None))
        if self.state_since[0] != st2:
            self.state_since = (st2, t)
        held = t - self.state_since[1]
        if st2 != "idle" and held > self.cfg.state_bound_s:
            self.violate("state-stuck", f"state {st2} for {held:.0f} s (limit {self.cfg.state_bound_s:g} s) while "
                                        f"/healthz said {ch} {h.get('reason') if isinstance(h, dict) else h!r}")

        def stable(pred, secs: float) -> bool:
            """pred held at every sample of the last `secs` seconds (and at least that long)."""
            hist = list(self.history)
            if not hist or t - hist[0][0] < secs:
                return False
            return all(pred(s, ok) for ts, s, ok in hist if t - ts <= secs)

        mic_down = ok1 is False and ok2 is False and stable(lambda s, ok: ok is False, 2.0)
        mic_up = ok1 is True and ok2 is True and stable(lambda s, ok: ok is True, 2.0)
        same = st1 == st2

        # healthz-200 / healthz-state / healthz-mic
        if ch != 200 or not isinstance(h, dict) or h.get("alive") is not True:
            why = h.get("reason") if isinstance(h, dict) else h
            self.violate("healthz-200", f"/healthz -> {ch} {why!r} (state {st2}, input ok={ok2}, "
                                        f"input detail {(s2.get('input') or {}).get('detail')!r})")
        if isinstance(h, dict):
            hs, reason = h.get("state"), str(h.get("reason", ""))
            if same and hs != st1:
                self.violate("healthz-state", f"/healthz state {hs!r} but /api/status said {st1!r} before and after")
            if hs in ("starting", "stopping") or st2 in ("starting", "stopping"):
                self.violate("healthz-state", f"state {hs!r}/{st2!r} while no (re)start or stop was under way")
            if mic_down and not re.search(r"\bmic(rophone)?\b", reason, re.I):
                self.violate("healthz-mic", f"input down for 2+ s but /healthz reason is {reason!r} ({ch})")
            if mic_up and re.search(r"mic(rophone)? down", reason, re.I):
                self.violate("healthz-mic", f"input ok for 2+ s but /healthz reason is {reason!r}")
        # status-mic: the latest STATUS= datagram
        if mic_down and "MIC DOWN" not in status_field:
            self.violate("status-mic", f"input down for 2+ s ({(s2.get('input') or {}).get('detail')!r}) but the "
                                       f"latest {status_field!r} does not say MIC DOWN")
        if mic_up and "MIC DOWN" in status_field:
            self.violate("status-mic", f"input ok for 2+ s but the latest {status_field!r} says MIC DOWN")
        if mic_up and same and st2 == "idle" and stable(lambda s, ok: s == "idle", 2.0) \
                and "listening for hey_jarvis" not in status_field:
            self.violate("status-mic", f"idle with a mic for 2+ s but the latest {status_field!r} "
                                       f"does not say 'listening for hey_jarvis'")
        # readyz
        if cr == 404 or cr == 405:
            self.violate("readyz", f"GET /readyz -> {cr}: {r!r} (the endpoint is missing)")
        elif same:
            ready = isinstance(r, dict) and r.get("ready")
            if st1 == "idle" and (cr != 200 or ready is not True):
                self.violate("readyz", f"idle but /readyz -> {cr} {r!r}")
            if st1 != "idle":
                want = f"busy: {st1}"
                if cr != 503 or not isinstance(r, dict) or r.get("ready") is not False \
                        or not str(r.get("reason", "")).startswith(want):
                    self.violate("readyz", f"state {st1} but /readyz -> {cr} {r!r} (want 503, reason {want!r})")
        # watchdog pings
        ready_for = t - self.up_since
        if ready_for > 3.0:
            gap = t - (pings[-1] if pings else t - ready_for)
            self.result.max_ping_gap_s = max(self.result.max_ping_gap_s, gap)
            if gap > self.cfg.ping_gap_s:
                self.violate("watchdog-pings", f"no WATCHDOG=1 for {gap:.1f} s (state {st2}, input ok={ok2}, "
                                               f"/healthz {ch} {h.get('reason') if isinstance(h, dict) else h!r})")

    # -- disturbances ------------------------------------------------------------
    def _play(self, wav: Path) -> None:
        p = self.harness.play_into_mic(wav)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()

    def d_wake_turn(self):
        self._play(self.clips.wake_turn)

    def d_wake_only(self):
        self._play(self.clips.wake_only)

    def d_hotkey(self):
        if not self.keyboard.send(key_events((KEY_LEFTCTRL, 1), (KEY_SPACE, 1))):
            self.note("hotkey: the daemon's reader did not open the FIFO within 5 s")
            return
        if self.rng.random() < 0.6:
            time.sleep(0.3)
            self._play(self.clips.date)
            time.sleep(0.3)
        else:
            time.sleep(self.rng.uniform(0.05, 1.5))
        self.keyboard.send(key_events((KEY_SPACE, 0), (KEY_LEFTCTRL, 0)))

    def d_api_trigger(self):
        code, body = self.api("POST", "/api/trigger")
        if code not in (202, 409, 503, None):
            self.violate("api-error", f"POST /api/trigger -> {code}: {body}")

    def d_api_say(self):
        data = json.dumps({"text": self.rng.choice(SAY_TEXTS)}).encode()
        code, body = self.api("POST", "/api/say", body=data, headers={"content-type": "application/json"})
        if code not in (202, 409, 503, None):
            self.violate("api-error", f"POST /api/say -> {code}: {body}")

    def d_api_utterance(self):
        body, headers = multipart("audio", self.clips.date)
        code, answer = self.api("POST", "/api/utterance", body=body, headers=headers, timeout=90)
        if code == 200 and not (isinstance(answer, dict) and answer.get("reply")):
            self.violate("api-error", f"POST /api/utterance -> 200 without a reply: {answer}")
        elif code not in (200, 409, 503, None):
            self.violate("api-error", f"POST /api/utterance -> {code}: {answer}")

    def _live_settings(self) -> dict[tuple[str, str], str]:
        rng = self.rng
        live = {("vad", "silence_s"): rng.choice(["0.6", "0.8", "1.0"]),
                ("vad", "threshold"): rng.choice(["0.4", "0.5", "0.6"]),
                ("vad", "no_speech_timeout_s"): rng.choice(["3.0", "4.0"]),
                ("wake", "threshold"): rng.choice(["0.4", "0.45", "0.5"]),
                ("wake", "refractory_s"): rng.choice(["1.0", "2.0"])}
        kind = rng.choice(["builtin", "command-echo", "command-slow", "openai-down"])
        if kind == "builtin":
            live.update({("responder", "kind"): '"builtin"', ("responder", "timeout_s"): "3.0"})
        elif kind == "command-echo":
            live.update({("responder", "kind"): '"command"', ("responder", "timeout_s"): "3.0",
                         ("responder", "command"): json.dumps([shutil.which("cat") or "/bin/cat"])})
        elif kind == "command-slow":   # the builtin answers after the timeout
            live.update({("responder", "kind"): '"command"', ("responder", "timeout_s"): "2.0",
                         ("responder", "command"): json.dumps([shutil.which("sleep") or "/bin/sleep", "30"])})
        else:   # nothing listens there: refused at once, the builtin answers
            live.update({("responder", "kind"): '"openai"', ("responder", "timeout_s"): "2.0",
                         ("responder", "openai_url"): toml_str("http://127.0.0.1:9/v1/chat/completions")})
        return live

    def _hup(self, expect: str, what: str) -> None:
        d = self.daemon
        mark = len(d.lines)
        if d.proc.poll() is not None or self.expected_exit:
            return
        d.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if d.find(expect, mark):
                return
            if d.proc.poll() is not None or self.expected_exit:
                return   # a SIGTERM of the same burst got there first
            time.sleep(0.1)
        self.violate("sighup-reload", f"SIGHUP ({what}): no log line matching {expect!r} within 20 s")

    def d_sighup(self):
        live = self._live_settings()
        self._write_config(live)
        self._last_live = live
        desc = ", ".join(f"{s}.{k}={v}" for (s, k), v in live.items())
        self._hup(r"config reloaded", desc)

    def d_sighup_invalid(self):
        self._write_config({("vad", "silence_s"): "-1.0"})
        try:
            self._hup(r"not reloaded", "[vad] silence_s = -1 (invalid)")
        finally:
            self._write_config(self._last_live)
        if self.daemon.proc.poll() is not None and not self.expected_exit:
            self.violate("sighup-reload", f"an invalid config + SIGHUP stopped the daemon ({self.daemon.proc.returncode})")

    def d_server_restart(self):
        down = self.rng.uniform(0.5, 8.0)
        self.harness.kill()
        time.sleep(down)
        self._server_up()

    def _server_up(self):
        for _ in range(3):
            try:
                self.harness.start()
                if self.harness.pactl("info", check=False).returncode == 0:
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the test's PulseAudio server did not come back")

    def d_suspend_source(self):
        self.harness.pactl("suspend-source", "mic", "1", check=False)
        time.sleep(self.rng.uniform(2.0, 8.0))
        self.harness.pactl("suspend-source", "mic", "0", check=False)

    def d_sigterm_restart(self):
        self.sigterm("burst")

    # -- rounds --------------------------------------------------------------
    def _draw(self) -> list[str]:
        n = self.rng.choice([1, 1, 2, 2, 3])
        burst: list[str] = []
        while len(burst) < n:
            if self.deck:
                kind = self.deck.pop()
            else:
                kinds = list(WEIGHTS)
                kind = self.rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
            if any(kind in g and g & set(burst) for g in GROUPS):
                continue
            burst.append(kind)
        return burst

    def _round(self) -> None:
        burst = self._draw()
        self.result.rounds += 1
        for k in burst:
            self.result.disturbances[k] += 1
        t_round = self.now()
        errors: list[BaseException] = []
        threads = []
        for i, kind in enumerate(burst):
            if i:
                time.sleep(self.rng.uniform(0.0, 2.5))

            def run(kind=kind):
                try:
                    getattr(self, "d_" + kind)()
                except BaseException as exc:   # noqa: BLE001 - reported by the round
                    errors.append(exc)
            th = threading.Thread(target=run, name=f"chaos-{kind}", daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            th.join(120)
        if errors:
            raise errors[0]
        need_start = self.daemon.proc.poll() is not None
        if need_start and not self.expected_exit:
            self.violate("daemon-died", f"exited with {self.daemon.proc.returncode} unasked during [{'+'.join(burst)}]")
        if need_start and not self.restart():
            raise RuntimeError("the daemon did not come back after a restart")
        label = "+".join(burst)
        self.log(f"chaos: round {self.result.rounds} at {t_round:.0f} s: {label}; probing")
        self._probe(label)

    def _probe(self, label: str) -> None:
        """Play the probe until a turn that heard it is answered; bound from now (the burst's end)."""
        d = self.daemon
        t0 = time.monotonic()
        mark, plays, next_play = len(d.lines), 0, t0
        length = Clips.seconds(self.clips.probe)
        self.result.probes += 1
        while time.monotonic() - t0 < self.cfg.turn_bound_s:
            for m in ANSWERED.finditer("\n".join(d.lines[mark:])):
                if "time" in m.group(3).lower():
                    took = time.monotonic() - t0
                    self.result.probes_answered += 1
                    self.result.recoveries.append((took, label))
                    self.log(f"chaos:   probe answered in {took:.1f} s ({plays} play(s)): turn {m.group(1)} ({m.group(2)})")
                    self._checkpoint()
                    return
            if d.proc.poll() is not None:
                break
            if time.monotonic() >= next_play:
                code, st = http("GET", self.url + "/api/status", timeout=5)
                busy = code == 200 and isinstance(st, dict) and st.get("state") != "idle"
                if plays and busy:
                    next_play = time.monotonic() + 1.0   # a turn (maybe the probe's) is still going
                else:
                    if plays:
                        self.result.probe_replays += 1
                    self.harness.play_into_mic(self.clips.probe)
                    plays += 1
                    next_play = time.monotonic() + length + 6.0
            time.sleep(0.1)
        turns = [x for x in d.lines[mark:] if re.search(r"turn \d+ ", x)]
        code, st = http("GET", self.url + "/api/status", timeout=5)
        state = st.get("state") if isinstance(st, dict) else f"no answer ({code})"
        self.violate("turn-answered", f"after [{label}] no probe turn answered within {self.cfg.turn_bound_s:.0f} s "
                                      f"({plays} play(s)); state now {state}; turn lines meanwhile: {turns[-5:]}")
        # The daemon may be wedged: stop it (SIGTERM in that state counts too) and go on with a fresh one.
        if d.proc.poll() is None:
            self.result.disturbances["restart_after_failed_probe"] += 1
            self.sigterm("after-failed-probe")
        if not self.spawn():
            raise RuntimeError("the daemon did not come back after a restart")

    def _checkpoint(self) -> None:
        time.sleep(1.0)
        ps = proc_status(self.daemon.proc.pid)
        if ps and self.life is not None:
            self.life.checkpoints.append((self.now(), ps[0], ps[1]))

    def _check_growth(self) -> None:
        for life in self.result.lifetimes:
            cps = life.checkpoints
            if len(cps) < 3:
                continue
            base_threads, base_rss = cps[0][1], cps[0][2]
            last = cps[-3:]
            threads, rss = min(c[1] for c in last), min(c[2] for c in last)
            if threads - base_threads > self.cfg.max_thread_growth:
                self.violate("threads", f"pid {life.pid}: threads {base_threads} after warm-up -> {threads} "
                                        f"(limit +{self.cfg.max_thread_growth}); all: {[c[1] for c in cps]}")
            if rss - base_rss > self.cfg.max_rss_growth_mb:
                self.violate("rss", f"pid {life.pid}: RSS {base_rss:.0f} MB after warm-up -> {rss:.0f} MB "
                                    f"(limit +{self.cfg.max_rss_growth_mb:g} MB)")

    def _explain_traceback(self) -> None:
        """The first traceback's exception line (the last line of its block) into the detail."""
        v = self.result.violations.get("traceback")
        if v is None:
            return
        lines = self.all_lines
        i = next((n for n, x in enumerate(lines) if "Traceback" in x), None)
        if i is None:
            return
        j = i + 1
        while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
            j += 1
        if j < len(lines):
            v.detail += f" ... {lines[j]}"

    def _final_stop(self) -> None:
        """The last SIGTERM, in a random state too."""
        if self.daemon is None or self.daemon.proc.poll() is not None:
            return
        how = self.rng.choice(["idle", "wake_turn", "api_say", "server_restart", "suspend_source"])
        th = None
        if how != "idle":
            self.result.disturbances[how] += 1
            th = threading.Thread(target=getattr(self, "d_" + how), daemon=True)
            th.start()
            time.sleep(self.rng.uniform(0.5, 3.0))
        self.sigterm(f"final-{how}")
        if th is not None:
            th.join(30)

    # -- entry point ---------------------------------------------------------
    def run(self) -> ChaosResult:
        cfg = self.cfg
        self.log(f"chaos: seed {self.result.seed} (replay: CHAOS_SEED={self.result.seed}), {cfg.minutes:g} min, "
                 f"probe bound {cfg.turn_bound_s:g} s, weights {WEIGHTS}")
        self._setup()
        self.deck = list(WEIGHTS)
        self.rng.shuffle(self.deck)
        sampler = threading.Thread(target=self._sampler, name="chaos-sampler", daemon=True)
        try:
            if not self.spawn():
                return self.result
            self.log(f"chaos: daemon ready in {self.life.startup_s:.1f} s (pid {self.daemon.proc.pid})")
            sampler.start()
            self._probe("start")   # the warm-up checkpoint
            while time.monotonic() < self.deadline - 25 and not (cfg.fail_fast and self.result.violations):
                self._round()
            self._final_stop()
        except Exception as exc:   # the harness could not go on: that is a finding too
            self.violate("harness", f"{exc!r}")
        finally:
            self.stop_sampler.set()
            if sampler.is_alive():
                sampler.join(10)
            if self.daemon is not None and self.daemon.proc.poll() is None:
                self.daemon.proc.kill()
                self.daemon.proc.wait(10)
            self._scan_log()
            self._explain_traceback()
            self._check_growth()
            self.keyboard.close()
            self.harness.stop()
            self.notify.sock.close()
            self.result.turns_answered = sum(1 for x in self.all_lines if ANSWERED.search(x))
            self.result.wall_s = time.monotonic() - self.t_start
            self._logfile.close()
        return self.result


def run_chaos(cfg: ChaosConfig) -> ChaosResult:
    if cfg.workdir is None:
        import tempfile
        cfg.workdir = Path(tempfile.mkdtemp(prefix="voiced-chaos-"))
    return Chaos(cfg).run()
