"""A Wyoming client for the tests, made of the `wyoming` library's own AsyncTcpClient and
event classes (nothing hand-framed), and a server on the test daemon's engines."""
from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pcm_events(audio: np.ndarray, rate: int, samples: int = 1024) -> list[Event]:
    """int16 (or float) mono audio as AudioStart, AudioChunk..., AudioStop events."""
    if audio.dtype != np.int16:
        audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    chunks = [AudioChunk(rate=rate, width=2, channels=1, audio=audio[i:i + samples].tobytes()).event()
              for i in range(0, len(audio), samples)]
    return [AudioStart(rate=rate, width=2, channels=1).event(), *chunks, AudioStop().event()]


async def exchange(port: int, events: list[Event], done, timeout: float = 120.0) -> list[Event]:
    """Send events, collect the answers until done(event) (or an Error event)."""
    async with AsyncTcpClient("127.0.0.1", port, connect_timeout=5, read_timeout=timeout) as client:
        for event in events:
            await client.write_event(event)
        answers = []
        while True:
            event = await client.read_event()
            assert event is not None, f"server closed the connection after {[e.type for e in answers]}"
            answers.append(event)
            if done(event) or Error.is_type(event.type):
                return answers


async def describe(port: int) -> Info:
    answers = await exchange(port, [Describe().event()], lambda e: Info.is_type(e.type))
    return Info.from_event(answers[-1])


async def transcribe(port: int, audio: np.ndarray, rate: int = 16_000, language: str | None = "en") -> Event:
    """The Transcript (or Error) event for audio, asked for in `language` (None: not said)."""
    answers = await exchange(port, [Transcribe(language=language).event(), *pcm_events(audio, rate)],
                             lambda e: Transcript.is_type(e.type))
    return answers[-1]


async def synthesize(port: int, text: str) -> tuple[np.ndarray, int, list[Event]]:
    """Float audio and its rate, and every event the server sent."""
    answers = await exchange(port, [Synthesize(text=text).event()], lambda e: AudioStop.is_type(e.type))
    chunks = [AudioChunk.from_event(e) for e in answers if AudioChunk.is_type(e.type)]
    pcm = b"".join(c.audio for c in chunks)
    rate = chunks[0].rate if chunks else 0
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768, rate, answers


async def detect(port: int, audio: np.ndarray, names: list[str] | None = None) -> list[Event]:
    """Detection events and the NotDetected (or Error) that ends the stream."""
    answers = []
    async with AsyncTcpClient("127.0.0.1", port, connect_timeout=5, read_timeout=60) as client:
        for event in [Detect(names=names).event(), *pcm_events(audio, 16_000)]:
            await client.write_event(event)
        while True:
            event = await client.read_event()
            assert event is not None, "server closed the connection"
            answers.append(event)
            if NotDetected.is_type(event.type) or Error.is_type(event.type):
                return answers
            if Detection.is_type(event.type):
                return answers   # a client stops listening at the detection (as Home Assistant does)


def start_server(daemon, **limits):
    """voiced's Wyoming server on the (loaded) test daemon's engines, on a free port."""
    from voiced.config import WyomingSettings
    from voiced.wyoming.server import WyomingServer, WyomingService

    service = WyomingService.for_daemon(daemon, WyomingSettings(enabled=True, **limits))
    return WyomingServer(service, "127.0.0.1", free_port()).start()


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(coro_fn, *args):
    started = time.monotonic()
    result = asyncio.run(coro_fn(*args))
    return result, time.monotonic() - started
