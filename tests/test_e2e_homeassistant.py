"""voiced as Home Assistant's voice satellite, end to end on the virtual devices.

`voiced run` (real models, encrypted ESPHome API) is driven by aioesphomeapi, the library Home
Assistant's ESPHome integration uses, doing what Home Assistant does: subscribe to voice runs,
take the streamed request audio, send the pipeline events with a reply URL, announce, run
timers. The request is spoken into the virtual microphone; what reaches Home Assistant and
what the speaker plays are transcribed with the real Whisper.
"""
from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import sys
import threading
import time
from difflib import SequenceMatcher
from functools import partial
from pathlib import Path

import numpy as np
import pytest

aioesphomeapi = pytest.importorskip("aioesphomeapi", reason="aioesphomeapi is installed by scripts/setup.sh --test")

from aioesphomeapi import APIClient  # noqa: E402
from aioesphomeapi.model import VoiceAssistantEventType as E  # noqa: E402
from aioesphomeapi.model import VoiceAssistantTimerEventType as T  # noqa: E402

from support.pulse import speech_segments  # noqa: E402
from tests.fixtures_stt import wer  # noqa: E402
from tests.test_e2e_daemon import (REC_RATE, DaemonProcess, free_port, key_events, piper_wav,  # noqa: E402
                                   record_while, utterance)

pytestmark = pytest.mark.e2e
KEY = base64.b64encode(os.urandom(32)).decode()
KEY_LEFTCTRL, KEY_SPACE = 29, 57


class HomeAssistant:
    """What Home Assistant's ESPHome integration does with a voice satellite, on its own loop."""

    def __init__(self, port: int):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = port
        self.client: APIClient | None = None
        self.starts: list[str | None] = []
        self.stops: list[bool] = []
        self.audio = bytearray()
        self.finished: list = []
        self.call(self._connect())

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _connect(self):
        self.client = APIClient("127.0.0.1", self.port, None, noise_psk=KEY, client_info="Home Assistant (test)")
        await self.client.connect(login=True)
        await self.client.device_info()

        async def start(conversation_id, flags, audio_settings, wake_word_phrase):
            self.starts.append(wake_word_phrase)
            self.client.send_voice_assistant_event(E.VOICE_ASSISTANT_RUN_START, {})
            return 0     # 0: send the audio over this API connection

        async def stop(abort):
            self.stops.append(abort)

        async def audio(data, data2):
            self.audio += data

        async def finished(msg):
            self.finished.append(msg)
        self.client.subscribe_voice_assistant(handle_start=start, handle_stop=stop, handle_audio=audio,
                                              handle_announcement_finished=finished)

    def event(self, kind, data: dict | None = None) -> None:
        self.loop.call_soon_threadsafe(self.client.send_voice_assistant_event, kind, data or {})

    def timer(self, kind, seconds_left: int) -> None:
        self.loop.call_soon_threadsafe(partial(self.client.send_voice_assistant_timer_event, kind, "t1", "pasta", 60,
                                               seconds_left, kind != T.VOICE_ASSISTANT_TIMER_FINISHED))

    def wait(self, what, timeout: float = 30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if what():
                return
            time.sleep(0.05)
        pytest.fail(f"Home Assistant (test) waited {timeout} s in vain")

    def close(self):
        self.call(self.client.disconnect())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A web server for the reply audio, as Home Assistant serves its TTS results."""
    folder = tmp_path_factory.mktemp("media")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def satellite(pulse_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("satellite")
    keyboard = tmp / "kbd-event0"
    os.mkfifo(keyboard)
    env = {k: v for k, v in pulse_server.env.items() if not k.startswith("VOICED_") or k == "VOICED_MODELS_DIR"}
    port = free_port()
    env.update(VOICED_HOMEASSISTANT__ENABLED="true", VOICED_HOMEASSISTANT__PORT=str(port),
               VOICED_HOMEASSISTANT__ENCRYPTION_KEY=KEY, VOICED_HOMEASSISTANT__MDNS="false",
               VOICED_WEB__PORT=str(free_port()), VOICED_HOTKEY__ENABLED="true",
               VOICED_HOTKEY__KEY="KEY_LEFTCTRL+KEY_SPACE", VOICED_HOTKEY__DEVICES=json.dumps([str(keyboard)]))
    d = DaemonProcess(env, tmp)
    d.wait_for(r"listening for hey_jarvis", timeout=240)
    d.wait_for(r"Home Assistant satellite on 127.0.0.1:\d+ \(encrypted\)", timeout=10)
    ha = HomeAssistant(port)
    d.wait_for(r"Home Assistant takes the voice pipeline", timeout=10)
    d.keyboard = keyboard
    yield d, ha
    ha.close()
    assert d.stop() == 0


def heard(audio: np.ndarray, rate: int, whisper_stt) -> str:
    from voiced.audio.dsp import resample

    segments = speech_segments(audio, rate)
    assert segments, "nothing came out of the speaker"
    clip = audio[int(segments[0][0] * rate): int(segments[-1][1] * rate) + rate // 4]
    return whisper_stt.transcribe(resample(clip, rate, 16_000)).text


def similar(a: str, b: str) -> float:
    norm = lambda s: "".join(c for c in s.lower() if c.isalpha())   # noqa: E731
    return SequenceMatcher(None, norm(a), norm(b)).ratio()


def test_a_spoken_request_goes_to_home_assistant_and_its_answer_is_played(satellite, media, pulse_server, tmp_path,
                                                                          whisper_stt, piper_voice):
    daemon, ha = satellite
    folder, base = media
    request, answer = "Turn on the kitchen lights.", "The kitchen lights are on."
    piper_wav(piper_voice, answer, folder / "answer.wav")
    wav = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("piper", request), 1.0], piper_voice)
    mark, before = len(daemon.lines), len(ha.starts)

    def act():
        pulse_server.play_into_mic(wav).wait(30)
        ha.wait(lambda: len(ha.starts) > before)
        time.sleep(0.3)
        # Home Assistant's VAD would now end the speech: the audio it got is the request.
        streamed = np.frombuffer(bytes(ha.audio), np.int16).astype(np.float32) / 32768
        got = whisper_stt.transcribe(streamed).text
        print(f"Home Assistant got {len(streamed) / 16000:.1f} s of audio: {got!r}", file=sys.stderr)
        assert wer(request, got) <= 0.2, got
        for kind, data in ((E.VOICE_ASSISTANT_STT_START, {}), (E.VOICE_ASSISTANT_STT_VAD_END, {}),
                           (E.VOICE_ASSISTANT_STT_END, {"text": got}), (E.VOICE_ASSISTANT_INTENT_START, {}),
                           (E.VOICE_ASSISTANT_INTENT_END, {"conversation_id": "c1", "continue_conversation": "0"}),
                           (E.VOICE_ASSISTANT_TTS_START, {"tts_input": answer}),
                           (E.VOICE_ASSISTANT_TTS_END, {"url": f"{base}/answer.wav"}),
                           (E.VOICE_ASSISTANT_RUN_END, {})):
            ha.event(kind, data)
        daemon.wait_for(r"turn \d+ \(wake:hey_jarvis\) answered by Home Assistant", timeout=60, start=mark)

    ha.audio.clear()
    audio = record_while(pulse_server, tmp_path / "spk.raw", act, 1.0)
    assert ha.starts[-1] == "hey jarvis"
    said = heard(audio, REC_RATE, whisper_stt)
    print("speaker:", said, file=sys.stderr)
    assert similar(said, answer) >= 0.7, said
    ha.wait(lambda: ha.finished, 10)      # the satellite says when the reply was played


def test_an_announcement_is_played_and_reported(satellite, media, pulse_server, tmp_path, whisper_stt, piper_voice):
    daemon, ha = satellite
    folder, base = media
    message = "Dinner is ready in the dining room."
    piper_wav(piper_voice, message, folder / "dinner.wav")
    result = {}

    def act():
        result["finished"] = ha.call(ha.client.send_voice_assistant_announcement_await_response(
            f"{base}/dinner.wav", 60, text=message))
    audio = record_while(pulse_server, tmp_path / "spk.raw", act, 0.5)
    assert result["finished"].success
    said = heard(audio, REC_RATE, whisper_stt)
    print("announcement heard:", said, file=sys.stderr)
    assert similar(said, message) >= 0.7, said


def test_a_finished_timer_rings_until_the_hotkey_stops_it(satellite, pulse_server, tmp_path):
    daemon, ha = satellite
    mark, before = len(daemon.lines), len(ha.starts)
    ha.timer(T.VOICE_ASSISTANT_TIMER_STARTED, 60)
    daemon.wait_for(r"timer t1 \(pasta\): started", timeout=10, start=mark)
    fd = os.open(daemon.keyboard, os.O_WRONLY)
    pressed = []

    def act():
        ha.timer(T.VOICE_ASSISTANT_TIMER_FINISHED, 0)
        daemon.wait_for(r"a timer finished: ringing", timeout=10, start=mark)
        time.sleep(6.0)     # a ring every ~3.2 s through the virtual speaker (1.52 s of tone+quiet,
                            # then the play's drain): two whole ones before the key
        pressed.append(time.monotonic())
        os.write(fd, key_events((KEY_LEFTCTRL, 1), (KEY_SPACE, 1)))
        time.sleep(0.3)
        os.write(fd, key_events((KEY_SPACE, 0), (KEY_LEFTCTRL, 0)))
        daemon.wait_for(r"turn \d+ \(timer\) interrupted", timeout=10, start=mark)
    try:
        audio = record_while(pulse_server, tmp_path / "spk.raw", act, 2.0)
    finally:
        os.close(fd)
    rings = speech_segments(audio, REC_RATE, gap_s=0.5)
    print("ring bursts (s):", [(round(a, 2), round(b, 2)) for a, b in rings], file=sys.stderr)
    assert len(rings) >= 2, "the timer should have rung more than once before the key"
    # The key press also starts a run (as the stop-then-wake of Home Assistant's satellites):
    # Home Assistant ends it.
    ha.wait(lambda: len(ha.starts) > before)
    ha.event(E.VOICE_ASSISTANT_RUN_END)
    daemon.wait_for(r"turn \d+ \(hotkey\) (no speech|answered by Home Assistant)", timeout=20, start=mark)


def test_a_ringing_timer_stops_when_told_stop(satellite, pulse_server, tmp_path, piper_voice):
    daemon, ha = satellite
    # A whole command: Piper's lone "Stop." through the daemon was heard "Start." in two
    # fresh-clone runs (Piper renders differently each time); the lone word is measured at 20
    # offsets in tests/test_stt_languages.py::test_expected_phrases_help_a_shouted_stop.
    stop = utterance(tmp_path, [("piper", "Stop the timer."), 0.8], piper_voice)
    mark = len(daemon.lines)
    ha.timer(T.VOICE_ASSISTANT_TIMER_FINISHED, 0)
    daemon.wait_for(r"a timer finished: ringing", timeout=10, start=mark)
    time.sleep(2.0)
    pulse_server.play_into_mic(stop).wait(10)
    daemon.wait_for(r"heard .*[Ss]top.*: the timer stops ringing", timeout=20, start=mark)
    daemon.wait_for(r"turn \d+ \(timer\) stopped by voice", timeout=10, start=mark)


def test_continue_conversation_listens_again_without_the_wake_word(satellite, media, pulse_server, tmp_path,
                                                                   piper_voice):
    daemon, ha = satellite
    folder, base = media
    piper_wav(piper_voice, "Which room?", folder / "which.wav")
    wav = utterance(tmp_path, [0.5, "hey jarvis", 0.7, ("piper", "Turn on the lights."), 1.0], piper_voice)
    mark, before = len(daemon.lines), len(ha.starts)
    pulse_server.play_into_mic(wav).wait(30)
    ha.wait(lambda: len(ha.starts) > before)
    for kind, data in ((E.VOICE_ASSISTANT_STT_VAD_END, {}), (E.VOICE_ASSISTANT_STT_END, {"text": "Turn on the lights."}),
                       (E.VOICE_ASSISTANT_INTENT_END, {"continue_conversation": "1"}),
                       (E.VOICE_ASSISTANT_TTS_START, {"tts_input": "Which room?"}),
                       (E.VOICE_ASSISTANT_TTS_END, {"url": f"{base}/which.wav"}), (E.VOICE_ASSISTANT_RUN_END, {})):
        ha.event(kind, data)
    # After "Which room?" the satellite starts the next run itself, without a wake word.
    ha.wait(lambda: len(ha.starts) > before + 1, 30)
    assert ha.starts[-1] is None
    daemon.wait_for(r"turn \d+ \(follow-up\) goes to Home Assistant|turn \d+ goes to Home Assistant", timeout=5,
                    start=mark)
    ha.event(E.VOICE_ASSISTANT_ERROR, {"code": "stt-no-text-recognized", "message": "No text recognized"})
    daemon.wait_for(r"turn \d+ \(follow-up\) error: No text recognized", timeout=20, start=mark)
