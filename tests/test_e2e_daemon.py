"""End to end through real (virtual) audio devices: `voiced run` as a subprocess on a private
PulseAudio server; speech is played into its microphone and its reply recorded from the
speaker monitor, then transcribed with the real Whisper."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import espeak_wav
from support.pulse import load_raw, speech_segments

pytestmark = pytest.mark.e2e
REC_RATE = 24_000


class DaemonProcess:
    def __init__(self, env: dict, tmp: Path):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "voiced", "run"], env=env, cwd=tmp,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            print("daemon:", line.rstrip(), file=sys.stderr)

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines[start:]:
                m = regex.search(line)
                if m:
                    return m
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited with {self.proc.returncode}:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.1)
        pytest.fail(f"no log line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotifySocket:
    """A real sd_notify socket, as systemd gives a Type=notify service."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            for field in data.decode().splitlines():
                self.messages.append((time.monotonic(), field))

    def fields(self, prefix: str) -> list[tuple[float, str]]:
        return [(t, f) for t, f in self.messages if f.startswith(prefix)]


@pytest.fixture(scope="module")
def daemon(pulse_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("daemon")
    notify = NotifySocket(tmp / "notify.sock")
    env = {k: v for k, v in pulse_server.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    keyboard = tmp / "kbd-event0"
    os.mkfifo(keyboard)   # a keyboard node: the hotkey reader gets struct input_event records from it
    # turn_threshold 0.7: see test_a_paused_sentence_is_answered_whole (complete questions score >= 0.9).
    env.update(VOICED_VAD__NO_SPEECH_TIMEOUT_S="3", VOICED_VAD__TURN_THRESHOLD="0.7",
               NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="2000000",
               VOICED_HOTKEY__ENABLED="true", VOICED_HOTKEY__KEY="KEY_LEFTCTRL+KEY_SPACE",
               VOICED_HOTKEY__DEVICES=json.dumps([str(keyboard)]), VOICED_WEB__PORT=str(free_port()))
    d = DaemonProcess(env, tmp)
    d.notify, d.keyboard, d.env = notify, keyboard, env
    d.wait_for(r"listening for hey_jarvis", timeout=240)
    yield d
    t0 = time.monotonic()
    code = d.stop()
    took = time.monotonic() - t0
    print(f"SIGTERM -> exit in {took:.2f} s", file=sys.stderr)
    assert code == 0, "daemon did not stop cleanly on SIGTERM"
    assert notify.fields("STOPPING=1"), "no STOPPING=1 sent on SIGTERM"
    assert took < 10


def test_ready_status_and_watchdog(daemon):
    end = time.monotonic() + 10
    while time.monotonic() < end and not daemon.notify.fields("READY=1"):
        time.sleep(0.1)
    assert daemon.notify.fields("READY=1"), "READY=1 never sent"
    statuses = [f for _, f in daemon.notify.fields("STATUS=")]
    assert any("listening for hey_jarvis" in s for s in statuses), statuses
    time.sleep(3.5)
    pings = [t for t, _ in daemon.notify.fields("WATCHDOG=1")]
    recent = [t for t in pings if t > time.monotonic() - 3.0]
    assert 2 <= len(recent) <= 5, f"WATCHDOG_USEC=2 s wants a ping every ~1 s, got {len(recent)} in 3 s"


def piper_wav(engine, text: str, path: Path) -> Path:
    from voiced.audio.decode import write_wav
    from voiced.audio.dsp import resample

    chunks = list(engine.synthesize(text))
    write_wav(path, resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, 16_000), 16_000)
    return path


def utterance(tmp: Path, parts: list, piper=None) -> Path:
    """Phrases and pauses (seconds) joined into one 16 kHz WAV. A str is spoken by espeak-ng,
    ("piper", text) by the Piper voice: Whisper base mishears espeak's robotic "what time is
    it" as "What? I will it." whatever the pipeline does, so the request uses a second voice."""
    files = []
    for i, part in enumerate(parts):
        f = tmp / f"part{i}.wav"
        if isinstance(part, float):
            subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(f), "trim", "0", str(part)], check=True)
        elif isinstance(part, tuple) and part[0] == "wav":
            f = part[1]                      # a real recording, 16 kHz mono
        elif isinstance(part, tuple):
            piper_wav(piper, part[1], f)
        else:
            espeak_wav(part, f)
        files.append(str(f))
    out = tmp / "utterance.wav"
    subprocess.run(["sox", *files, str(out)], check=True)
    return out


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _spelled(text: str) -> str:
    """Letters only, numbers under 100 written as words: "It's 8:11 AM." -> "itseightelevenam"."""
    def word(m: re.Match) -> str:
        n = int(m.group(0))
        if n < 20:
            return _ONES[n]
        return _TENS[n // 10 - 2] + (_ONES[n % 10] if n % 10 else "") if n < 100 else m.group(0)
    return re.sub(r"[^a-z]", "", re.sub(r"\d+", word, text.lower()))


def reply_said(daemon, mark: int, pattern: str = r"turn \d+ \([^)]*\) answered") -> str:
    """What the daemon says it answered in the first turn after `mark` matching `pattern`."""
    line = daemon.wait_for(pattern + r".*", timeout=1, start=mark).group(0)
    m = re.search(r'said (["\'])(.*)\1; ', line)
    assert m, f"no reply text in {line!r}"
    return m.group(2)


def assert_time_spoken(audio: np.ndarray, whisper_stt, asked: dt.datetime, said: str) -> str:
    """The daemon's reply `said` gives the clock time (within 3 minutes), and the speaker recording
    is that reply. Whisper base often mishears a synthetic clock time ("eight eleven" -> "a 11",
    "Deloven"; "nine oh one" -> "901"), so the recording is compared to the reply as letters
    with numbers spelled out, or as letters then digits, not by finding a time in it."""
    m = re.search(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)", said)
    assert m, f"no time in the daemon's reply {said!r}"
    told = int(m.group(1)) % 12 * 60 + int(m.group(2))
    now = (asked.hour % 12) * 60 + asked.minute
    assert min(abs(told - now), 720 - abs(told - now)) <= 3, f"reply {said!r} vs clock {asked:%H:%M}"
    segments = speech_segments(audio, REC_RATE)
    assert segments, "nothing came out of the speaker"
    start, end = segments[0][0], segments[-1][1]
    from voiced.audio.dsp import resample
    heard = whisper_stt.transcribe(resample(audio[int(start * REC_RATE): int(end * REC_RATE) + REC_RATE // 4],
                                            REC_RATE, 16_000)).text
    from difflib import SequenceMatcher

    def letters_then_digits(text: str) -> str:   # "It's 901am." and "It's 9:01 AM." -> "itsam901"
        return re.sub(r"[^a-z]", "", text.lower()) + re.sub(r"\D", "", text)
    similarity = max(SequenceMatcher(None, _spelled(heard), _spelled(said)).ratio(),
                     SequenceMatcher(None, letters_then_digits(heard), letters_then_digits(said)).ratio())
    print(f"reply heard from the speaker: {heard!r} (said {said!r}, similarity {similarity:.2f})", file=sys.stderr)
    # A time reply heard as another sentence scores ~0.2-0.4; a misheard number costs ~0.1-0.3.
    assert similarity >= 0.6, f"the speaker played {heard!r}, not the reply {said!r}"
    return heard


def record_while(pulse_server, path: Path, action, seconds_after: float):
    rec = pulse_server.record_speaker(path, REC_RATE)
    time.sleep(0.5)
    try:
        action()
        time.sleep(seconds_after)
    finally:
        rec.terminate()
        rec.wait(5)
    return load_raw(path)


def test_sighup_reloads_config(daemon):
    import signal

    mark, before = len(daemon.lines), len(daemon.notify.messages)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(r"config reloaded", timeout=20, start=mark)
    fields = [f for _, f in daemon.notify.messages[before:]]
    assert "RELOADING=1" in fields and any(f.startswith("MONOTONIC_USEC=") for f in fields)
    assert fields.index("RELOADING=1") < len(fields) - 1 and "READY=1" in fields[fields.index("RELOADING=1"):]
    assert daemon.proc.poll() is None

def test_wake_word_alone_ends_quietly(daemon, pulse_server, tmp_path):
    wav = utterance(tmp_path, [0.5, "hey jarvis", 0.5])
    mark = len(daemon.lines)

    def act():
        pulse_server.play_into_mic(wav).wait(10)
        daemon.wait_for(r"wake word hey_jarvis", timeout=10, start=mark)
        daemon.wait_for(r"turn \d+ .*no speech", timeout=15, start=mark)

    audio = record_while(pulse_server, tmp_path / "spk.raw", act, 1.0)
    # Only the earcons may sound (the listening chime, then the falling "gave up" tone): short.
    sounds = speech_segments(audio, REC_RATE, gap_s=0.05)
    assert 1 <= len(sounds) <= 2 and all(b - a < 0.45 for a, b in sounds), \
        f"the daemon spoke although nothing was asked: {sounds}"
    assert daemon.proc.poll() is None


def test_spoken_turn_answers_with_the_time(daemon, pulse_server, tmp_path, whisper_stt, piper_voice):
    wav = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("piper", "What time is it?"), 2.0], piper_voice)
    mark = len(daemon.lines)
    asked = dt.datetime.now()

    def act():
        pulse_server.play_into_mic(wav)
        daemon.wait_for(r"wake word hey_jarvis", timeout=15, start=mark)
        daemon.wait_for(r"turn \d+ .*answered", timeout=90, start=mark)

    audio = record_while(pulse_server, tmp_path / "spk.raw", act, 1.5)
    assert_time_spoken(audio, whisper_stt, asked, reply_said(daemon, mark))
    turn_line = daemon.wait_for(r"turn \d+ .*answered.*", timeout=1, start=mark).group(0)
    print("daemon timings:", turn_line, file=sys.stderr)
    assert "voice_to_voice=" in turn_line
    # A complete question: the end-of-turn model ends it at the first short pause.
    decided = [x for x in daemon.lines[mark:] if "end of turn:" in x]
    print("end of turn:", decided, file=sys.stderr)
    m = re.search(r"sounds finished \(p=([\d.]+), \d+ ms\) after a ([\d.]+) s pause", decided[0] if decided else "")
    assert m and float(m.group(2)) < 0.5, f"the model should have ended the question at its pause: {decided}"


def test_follow_up_without_wake_word_then_window_closes(daemon, pulse_server, tmp_path, piper_voice):
    ask = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("piper", "What can you do?"), 1.0], piper_voice)
    (tmp_path / "f").mkdir()   # utterance() names its files the same way in each folder
    follow = utterance(tmp_path / "f", [0.2, ("piper", "What is the date today?"), 1.0], piper_voice)
    mark = len(daemon.lines)
    pulse_server.play_into_mic(ask)
    daemon.wait_for(r"turn \d+ \(wake:hey_jarvis\) answered", timeout=90, start=mark)
    daemon.wait_for(r"listening \d+ s for a follow-up", timeout=5, start=mark)
    pulse_server.play_into_mic(follow).wait(10)
    line = daemon.wait_for(r"turn \d+ \(follow-up\) answered: .*", timeout=90, start=mark).group(0)
    assert "date" in line.lower() and "Today is" in line, line
    # After that answer a new window opens; silence closes it without a reply or a false wake.
    daemon.wait_for(r"turn \d+ \(follow-up\) follow-up window closed", timeout=20, start=mark)


def test_a_paused_sentence_is_answered_whole(daemon, pulse_server, tmp_path, oww_dir):
    """Real speech with a thinking pause: JFK's "what your country can do for you, | ask what
    you can do for your country.", his 0.6 s pause after "for you," stretched to 1.2 s (a fixed
    0.8 s silence cuts there). The end-of-turn model hears the phrase as unfinished and the whole
    sentence is answered. Its score for this pause is 0.03-0.07 offline however the audio is cut
    or scaled, but through the virtual devices it was 0.17 in one run and 0.56 in another (his
    "ask not |" varies 0.1-0.9, so it is not used): this daemon runs at turn_threshold 0.7, which
    checks the mechanism with a margin; the product default (0.5) is chosen by `voiced bench`."""
    import soundfile as sf

    from tests.fixtures_audio import silero_segments
    from tests.fixtures_stt import jfk_audio
    from voiced.models.openwakeword_assets import SILERO_VAD

    jfk = np.clip(jfk_audio() * 32767, -32768, 32767).astype(np.int16)
    phrases = silero_segments(jfk, oww_dir / SILERO_VAD)
    assert len(phrases) == 4, phrases
    pause = int((phrases[2][1] + phrases[3][0]) / 2 * 16_000)   # the middle of the pause after "for you,"
    tail = tmp_path / "for_you.wav"
    sf.write(tail, np.concatenate([jfk[int((phrases[2][0] - 0.15) * 16_000):pause], np.zeros(9_600, np.int16),
                                   jfk[pause:]]), 16_000, subtype="PCM_16")
    wav = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("wav", tail), 1.5])
    mark = len(daemon.lines)
    pulse_server.play_into_mic(wav)
    line = daemon.wait_for(r"turn \d+ \(wake:hey_jarvis\) answered: .*", timeout=90, start=mark).group(0)
    heard = line.split("heard", 1)[1].split("said")[0].lower()
    print("daemon:", line, file=sys.stderr)
    assert "for you" in heard and "for your country" in heard, f"the request was cut at a pause: {line}"
    unfinished = [x for x in daemon.lines[mark:] if "sounds unfinished" in x]
    print("pauses:", unfinished, file=sys.stderr)
    assert unfinished, "the model should have heard the pause after 'for you,' as unfinished"


def test_cancel_phrase_ends_the_turn_silently(daemon, pulse_server, tmp_path, piper_voice):
    wav = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("piper", "Never mind."), 1.5], piper_voice)
    mark = len(daemon.lines)

    def act():
        pulse_server.play_into_mic(wav)
        daemon.wait_for(r"turn \d+ .*cancelled", timeout=60, start=mark)

    audio = record_while(pulse_server, tmp_path / "spk.raw", act, 1.0)
    sounds = speech_segments(audio, REC_RATE, gap_s=0.05)
    assert all(b - a < 0.45 for a, b in sounds), f"a cancelled turn spoke: {sounds}"


def test_false_wakes_are_counted_in_status(daemon):
    import urllib.request

    port = daemon.env["VOICED_WEB__PORT"]
    status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10))
    assert status["counts"].get("false_wakes", 0) >= 1   # the wake word alone, earlier in this module


KEY_LEFTCTRL, KEY_SPACE = 29, 57


def key_events(*pairs: tuple[int, int]) -> bytes:
    """struct input_event records (EV_KEY + SYN_REPORT), as a keyboard sends them."""
    record, t = struct.Struct("llHHi"), time.time()
    return b"".join(record.pack(int(t), 0, 1, code, value) + record.pack(int(t), 0, 0, 0, 0) for code, value in pairs)


def test_push_to_talk_hotkey_turn(daemon, pulse_server, tmp_path, whisper_stt, piper_voice):
    """Hold Ctrl+Space, speak, release: a turn without the wake word, ended by the key, not the VAD."""
    request = utterance(tmp_path, [("piper", "What time is it?"), 0.3], piper_voice)
    fd = os.open(daemon.keyboard, os.O_WRONLY)   # blocks until the daemon's reader has it open
    mark = len(daemon.lines)
    asked = dt.datetime.now()

    def act():
        os.write(fd, key_events((KEY_LEFTCTRL, 1)))        # Ctrl alone does nothing
        time.sleep(0.3)
        assert not any("turn" in line for line in daemon.lines[mark:])
        os.write(fd, key_events((KEY_SPACE, 1)))           # the whole combination: listening
        time.sleep(0.3)
        pulse_server.play_into_mic(request).wait(10)
        time.sleep(0.3)
        os.write(fd, key_events((KEY_SPACE, 0), (KEY_LEFTCTRL, 0)))
        daemon.wait_for(r"hotkey released", timeout=5, start=mark)
        daemon.wait_for(r"turn \d+ \(hotkey\) answered", timeout=90, start=mark)

    try:
        audio = record_while(pulse_server, tmp_path / "spk.raw", act, 1.5)
    finally:
        os.close(fd)
    assert_time_spoken(audio, whisper_stt, asked, reply_said(daemon, mark, r"turn \d+ \(hotkey\) answered"))


# One sentence of ~10 s (under the 200-character chunk limit): one chunk of continuous speech,
# so the interruption lands mid-speech, not in a gap between sentences.
LONG_REPLY = ("Once upon a time a small robot lived in an old lighthouse by the sea and counted every ship "
              "that passed by at night and wrote down the names of all their captains in a big blue book.")


def _wait_state(daemon, state: str, timeout: float = 20.0) -> str:
    import urllib.request

    port, end = daemon.env["VOICED_WEB__PORT"], time.monotonic() + timeout
    while time.monotonic() < end:
        now = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10))["state"]
        if now == state:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the daemon stayed {now} for {timeout:.0f} s, not {state}")


def _wait_idle(daemon) -> None:
    """Until an earlier test's turn or follow-up window is over (the API answers 409 while busy)."""
    _wait_state(daemon, "idle")


def _say(daemon, text: str) -> None:
    import urllib.request

    _wait_idle(daemon)
    port = daemon.env["VOICED_WEB__PORT"]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/say", data=json.dumps({"text": text}).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    assert urllib.request.urlopen(req, timeout=10).status == 202


def _barge_in(daemon, pulse_server, interrupt) -> tuple[tuple, tuple, float]:
    """A long reply, interrupted by `interrupt()` ~2.5 s after it starts. Returns (audio, t0) of
    the speaker and of the microphone, t0 being sample 0 on this process's monotonic clock (the
    benchmark's recorders: each parec block's arrival time bounds when its samples were made),
    and the daemon's own stop time (stop request -> stream closed)."""
    from voiced.bench.e2e import Recorder

    mark = len(daemon.lines)
    spk = Recorder(pulse_server.env, "spk.monitor", REC_RATE)
    mic = Recorder(pulse_server.env, "mic16.monitor", 16_000)
    try:
        time.sleep(0.5)
        _say(daemon, LONG_REPLY)
        _wait_state(daemon, "speaking")
        time.sleep(2.5)
        interrupt()
        cut = daemon.wait_for(r"playback cut: stopped (\d+) ms after the stop request", timeout=15, start=mark)
        daemon.wait_for(r"turn \d+ \((wake:hey_jarvis|hotkey)\) answered", timeout=90, start=mark)
        time.sleep(1.5)
    finally:
        spk.stop()
        mic.stop()
    return (spk.audio(), spk.t0()), (mic.audio(), mic.t0()), int(cut.group(1)) / 1000


def _reply_stop(speaker: tuple, at: float) -> float:
    """When (monotonic) the interrupted reply's sound ended: the end of the loud stretch under way at `at`."""
    audio, t0 = speaker
    for start, end in speech_segments(audio, REC_RATE, gap_s=0.15):
        if t0 + start <= at <= t0 + end + 0.25:
            return t0 + end
    raise AssertionError(f"no reply was playing at {at - t0:.2f} s: {speech_segments(audio, REC_RATE)}")


def test_wake_word_barge_in_cuts_the_reply_and_starts_a_turn(daemon, pulse_server, tmp_path, whisper_stt,
                                                              piper_voice):
    request = utterance(tmp_path, [0.3, "hey jarvis", 0.6, ("piper", "What time is it?"), 1.5], piper_voice)
    asked, mark = dt.datetime.now(), len(daemon.lines)
    speaker, (mic, mic_t0), daemon_stop_s = _barge_in(daemon, pulse_server,
                                                      lambda: pulse_server.play_into_mic(request))
    wake_end = mic_t0 + speech_segments(mic, 16_000, gap_s=0.3)[0][1]   # "hey jarvis": the first thing said
    stop = _reply_stop(speaker, wake_end)
    latency = stop - wake_end
    print(f"barge-in: the reply's sound ended {latency * 1000:.0f} ms after the wake word ended (detection, "
          f"stop and audio buffers); daemon stop request -> stream closed {daemon_stop_s * 1000:.0f} ms",
          file=sys.stderr)
    assert daemon_stop_s < 0.3
    assert latency < 1.0, f"the reply went on {latency:.2f} s after the wake word"
    assert any("barge-in: wake word hey_jarvis" in line for line in daemon.lines)
    # The request after the wake word is answered (the time), from the audio after the cut.
    audio, t0 = speaker
    assert_time_spoken(audio[int((stop - t0 + 0.3) * REC_RATE):], whisper_stt, asked,
                       reply_said(daemon, mark, r"turn \d+ \(wake:hey_jarvis\) answered"))


def test_hotkey_barge_in_cuts_the_reply_and_records_while_held(daemon, pulse_server, tmp_path, whisper_stt,
                                                                piper_voice):
    request = utterance(tmp_path, [("piper", "What time is it?"), 0.3], piper_voice)
    fd = os.open(daemon.keyboard, os.O_WRONLY)
    asked, pressed, mark = dt.datetime.now(), [], len(daemon.lines)

    def interrupt() -> None:
        os.write(fd, key_events((KEY_LEFTCTRL, 1), (KEY_SPACE, 1)))
        pressed.append(time.monotonic())

        def speak_then_release():
            time.sleep(0.8)   # the cut reply's turn ends; the held key's turn starts
            pulse_server.play_into_mic(request).wait(10)
            time.sleep(0.3)
            os.write(fd, key_events((KEY_SPACE, 0), (KEY_LEFTCTRL, 0)))
        threading.Thread(target=speak_then_release, daemon=True).start()

    try:
        speaker, _mic, daemon_stop_s = _barge_in(daemon, pulse_server, interrupt)
    finally:
        os.close(fd)
    stop = _reply_stop(speaker, pressed[0])
    latency = stop - pressed[0]
    print(f"hotkey barge-in: the reply's sound ended {latency * 1000:.0f} ms after the key press; daemon stop "
          f"request -> stream closed {daemon_stop_s * 1000:.0f} ms", file=sys.stderr)
    assert daemon_stop_s < 0.3
    assert latency < 1.0, f"the reply went on {latency:.2f} s after the key press"
    audio, t0 = speaker
    assert_time_spoken(audio[int((stop - t0 + 0.3) * REC_RATE):], whisper_stt, asked,
                       reply_said(daemon, mark, r"turn \d+ \(hotkey\) answered"))
