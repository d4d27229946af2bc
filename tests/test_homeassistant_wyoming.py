"""voiced as a Wyoming satellite ([homeassistant] protocol = "wyoming"), driven with the real
`wyoming` client the way Home Assistant's Wyoming integration drives wyoming-satellite:
describe, run-satellite, then a run started by the local wake word (detection, run-pipeline,
the request as audio chunks), Home Assistant's events and its reply as audio, `played` back;
an announcement outside a run. The daemon is the shared in-process one (real models; no
speaker here, so the reply's playback fails and is reported played anyway)."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.fixtures_audio import espeak
from tests.fixtures_stt import wer
from tests.fixtures_web import free_port
from tests.support.feeding import feed
from voiced.config import HomeAssistantSettings



@pytest.fixture(scope="module")
def wyoming_satellite(web_daemon):
    from voiced.homeassistant.wyoming_satellite import WyomingSatellite

    sat = WyomingSatellite(web_daemon)
    sat.settings = HomeAssistantSettings(enabled=True, protocol="wyoming", wyoming_port=free_port(),
                                         friendly_name="Test voiced")
    sat.start()
    web_daemon.satellite = sat
    yield sat
    web_daemon.satellite = None
    sat.stop()


async def read_until(client, wanted: str, timeout: float = 30):
    seen = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = await client.read_event()
                assert event is not None, f"satellite closed the connection; saw {seen}"
                seen.append(event.type)
                if event.type == wanted:
                    return event, seen
    except TimeoutError:
        pytest.fail(f"no {wanted!r} from the satellite in {timeout} s; saw {seen[:20]} ({len(seen)} events)")


def test_home_assistant_runs_the_satellite_over_wyoming(wyoming_satellite, daemon, piper_voice, caplog):
    import logging
    caplog.set_level(logging.INFO)
    from wyoming.asr import Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info
    from wyoming.satellite import RunSatellite
    from wyoming.tts import Synthesize
    from wyoming.vad import VoiceStopped

    from voiced.audio.dsp import resample

    request, answer = "What is on my calendar today?", "You have no events today."
    chunks = list(piper_voice.synthesize(request))
    spoken = resample(np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate, 16_000)
    pcm = np.concatenate([np.zeros(8000, np.int16), espeak("hey jarvis"), np.zeros(11_200, np.int16),
                          (spoken * 32767).astype(np.int16), np.zeros(16_000, np.int16)])
    reply = [c for c in piper_voice.synthesize(answer)]
    reply_pcm = (np.concatenate([c.audio for c in reply]) * 32767).astype(np.int16).tobytes()
    before = daemon.snapshot().turns[-1].id if daemon.snapshot().turns else 0

    async def home_assistant():
        client = AsyncTcpClient("127.0.0.1", wyoming_satellite.settings.wyoming_port)
        await client.connect()
        await client.write_event(Describe().event())
        info_event, _ = await read_until(client, "info")
        info = Info.from_event(info_event)
        await client.write_event(RunSatellite().event())
        for _ in range(50):
            if wyoming_satellite.available:
                break
            await asyncio.sleep(0.05)
        feeder = asyncio.get_running_loop().run_in_executor(None, feed, daemon, pcm, 4.0)   # 4x real time
        _, seen = await read_until(client, "run-pipeline")
        audio = bytearray()
        end = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < end:
            try:   # until the request has been fed and a second passes with no more audio
                event = await asyncio.wait_for(client.read_event(), 1.0)
            except TimeoutError:
                if feeder.done():
                    break
                continue
            if AudioChunk.is_type(event.type):
                audio += AudioChunk.from_event(event).audio
        await feeder
        got = np.frombuffer(bytes(audio), np.int16).astype(np.float32) / 32768
        for event in (VoiceStopped().event(), Transcript(text=request).event(), Synthesize(text=answer).event(),
                      AudioStart(rate=reply[0].sample_rate, width=2, channels=1).event(),
                      AudioChunk(rate=reply[0].sample_rate, width=2, channels=1, audio=reply_pcm).event(),
                      AudioStop().event()):
            await client.write_event(event)
        await read_until(client, "played")
        await client.disconnect()
        return info, seen, got

    info, seen, got = asyncio.run(home_assistant())
    assert info.satellite is not None and info.satellite.name == "Test voiced"
    assert info.satellite.active_wake_words == ["hey_jarvis"]
    assert "detection" in seen, seen
    heard = daemon.stt.transcribe(got).text
    print(f"Home Assistant got {len(got) / 16000:.1f} s: {heard!r}")
    assert wer(request, heard) <= 0.2, heard
    end = time.monotonic() + 20
    while time.monotonic() < end:
        turns = [t for t in daemon.snapshot().turns if t.id > before]
        if turns and daemon.snapshot().state.value == "idle":
            break
        time.sleep(0.05)
    turn = turns[-1]
    print("turn:", turn.trigger, turn.outcome, turn.transcript, turn.reply)
    assert turn.trigger == "wake:hey_jarvis" and turn.transcript == request and turn.reply == answer


def test_audio_outside_a_run_is_an_announcement_answered_with_played(wyoming_satellite, daemon, piper_voice):
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.satellite import RunSatellite

    chunks = list(piper_voice.synthesize("The washing machine is done."))
    pcm = (np.concatenate([c.audio for c in chunks]) * 32767).astype(np.int16).tobytes()
    before = daemon.snapshot().turns[-1].id if daemon.snapshot().turns else 0

    async def home_assistant():
        client = AsyncTcpClient("127.0.0.1", wyoming_satellite.settings.wyoming_port)
        await client.connect()
        await client.write_event(RunSatellite().event())
        rate = chunks[0].sample_rate
        for event in (AudioStart(rate=rate, width=2, channels=1).event(),
                      AudioChunk(rate=rate, width=2, channels=1, audio=pcm).event(), AudioStop().event()):
            await client.write_event(event)
        await read_until(client, "played")
        await client.disconnect()
    asyncio.run(home_assistant())
    end = time.monotonic() + 10
    while not [t for t in daemon.snapshot().turns if t.id > before] and time.monotonic() < end:
        time.sleep(0.05)
    turns = [t for t in daemon.snapshot().turns if t.id > before]
    assert turns and turns[-1].trigger == "announce", turns
