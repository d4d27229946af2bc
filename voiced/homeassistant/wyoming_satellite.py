"""voiced as a Wyoming satellite for Home Assistant's Wyoming integration.

Home Assistant connects here (as to wyoming-satellite), asks `describe`, then sends
`run-satellite`. A local wake word makes this side send `detection` and `run-pipeline`
(ASR to TTS) and stream the request as `audio-chunk`s; Home Assistant answers with its
pipeline's events (`voice-stopped`, `transcript`, `synthesize`, `error`) and the reply as
`audio-start`/`audio-chunk`/`audio-stop`, and waits for `played`. Audio outside a run is an
announcement; `timer-*` events are its timers. Same contract as the ESPHome satellite
(satellite.py): everything is posted to the turn owner, which decides.
"""
from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np

from ..core import assist
from ..core import messages as m

log = logging.getLogger("voiced.homeassistant")
RATE = 16_000
TIMERS = {"timer-started": 0, "timer-updated": 1, "timer-cancelled": 2, "timer-finished": 3}


class WyomingSatellite:
    def __init__(self, daemon):
        self.d = daemon
        self.settings = daemon.settings.homeassistant
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self.handler = None            # the connected Home Assistant
        self.running = False           # run-satellite received (and no pause since)
        self.streaming = False
        self.runs = 0
        self.timers: dict[str, dict] = {}
        self.last_error = ""

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        from wyoming.server import AsyncTcpServer

        s = self.settings
        self.loop = asyncio.new_event_loop()
        self._server = AsyncTcpServer(s.host, s.wyoming_port)
        try:
            self.loop.run_until_complete(self._server.start(self._handler_factory))
        except OSError as exc:
            self.last_error = f"cannot listen on {s.host}:{s.wyoming_port}: {exc.strerror or exc}"
            log.error("Home Assistant Wyoming satellite: %s; set [homeassistant] wyoming_port", self.last_error)
            return
        self._thread = threading.Thread(target=self.loop.run_forever, name="homeassistant", daemon=True)
        self._thread.start()
        log.info("Home Assistant satellite (Wyoming) on %s:%d; add it in Home Assistant's Wyoming integration",
                 s.host, s.wyoming_port)

    def _handler_factory(self, reader, writer):
        return _Handler(reader, writer, self)

    def stop(self) -> None:
        if self.loop is None or self._thread is None:
            return

        async def shutdown():
            await self._server.stop()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # -- the owner's side (same interface as satellite.Satellite) -------------------------------
    @property
    def available(self) -> bool:
        return self.handler is not None and self.running

    def _send(self, *events) -> None:
        handler = self.handler
        if handler is not None and self.loop is not None:
            async def write():
                for event in events:
                    await handler.write_event(event)

            def failed(future) -> None:
                if not future.cancelled() and future.exception() is not None:
                    log.warning("Home Assistant (Wyoming): cannot send to %s: %s", handler.peer, future.exception())
            asyncio.run_coroutine_threadsafe(write(), self.loop).add_done_callback(failed)

    def start_run(self, wake_word: str | None) -> bool:
        from wyoming.audio import AudioStart
        from wyoming.pipeline import PipelineStage, RunPipeline
        from wyoming.wake import Detection

        if not self.available:
            return False
        self.runs += 1
        self.streaming = True
        events = [Detection(name=wake_word).event()] if wake_word else []
        events += [RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event(),
                   AudioStart(rate=RATE, width=2, channels=1).event()]
        self._send(*events)
        return True

    def audio(self, pcm: np.ndarray) -> None:
        from wyoming.audio import AudioChunk

        if self.streaming:
            self._send(AudioChunk(rate=RATE, width=2, channels=1, audio=np.asarray(pcm, np.int16).tobytes()).event())

    def stop_audio(self, tell: bool = False) -> None:
        from wyoming.audio import AudioStop

        was, self.streaming = self.streaming, False
        if was and tell:
            self._send(AudioStop().event())

    def played(self, success: bool = True) -> None:
        from wyoming.snd import Played

        self._send(Played().event())

    def media_state(self, playing: bool) -> None:
        pass

    def status(self) -> dict:
        h = self.handler
        return {"enabled": True, "protocol": "wyoming", "listening": f"{self.settings.host}:{self.settings.wyoming_port}",
                "encrypted": False, "connected": h is not None, "voice": self.available,
                "peer": h.peer if h else None, "client": None, "runs": self.runs,
                "timers": list(self.timers.values()), "error": self.last_error}


def _handler_base():
    from wyoming.server import AsyncEventHandler
    return AsyncEventHandler


class _Handler(_handler_base()):
    def __init__(self, reader, writer, satellite: WyomingSatellite):
        super().__init__(reader, writer)
        self.sat = satellite
        self.owner = satellite.d.owner
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.tts: list[bytes] | None = None   # the reply (or announcement) being received
        self.tts_rate = RATE
        self.tts_width = 2

    async def run(self) -> None:
        if self.sat.handler is not None and self.sat.handler is not self:
            log.warning("Home Assistant (Wyoming) connection from %s refused: %s is connected", self.peer,
                        self.sat.handler.peer)
            return
        self.sat.handler = self
        log.info("Home Assistant (Wyoming) connected from %s", self.peer)
        try:
            await super().run()
        finally:
            if self.sat.handler is self:
                self.sat.handler, self.sat.running, self.sat.streaming = None, False, False
                log.warning("Home Assistant (Wyoming) disconnected (%s): voiced answers by itself", self.peer)
                self.owner.post(m.HaEvent(assist.GONE, {"message": "Home Assistant disconnected"}))

    async def handle_event(self, event) -> bool:
        from wyoming.asr import Transcript
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.error import Error
        from wyoming.info import Describe
        from wyoming.ping import Ping, Pong
        from wyoming.satellite import PauseSatellite, RunSatellite
        from wyoming.tts import Synthesize
        from wyoming.vad import VoiceStarted, VoiceStopped

        post = self.owner.post
        if Describe.is_type(event.type):
            await self.write_event(self._info().event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif RunSatellite.is_type(event.type):
            self.sat.running = True
            log.info("Home Assistant (Wyoming) runs the satellite: the wake word now starts an Assist run")
        elif PauseSatellite.is_type(event.type):
            self.sat.running = False
            log.info("Home Assistant (Wyoming) paused the satellite: voiced answers by itself")
        elif VoiceStarted.is_type(event.type):
            post(m.HaEvent(assist.STT_VAD_START, {}))
        elif VoiceStopped.is_type(event.type):
            post(m.HaEvent(assist.STT_VAD_END, {}))
        elif Transcript.is_type(event.type):
            post(m.HaEvent(assist.STT_END, {"text": Transcript.from_event(event).text}))
        elif Synthesize.is_type(event.type):
            post(m.HaEvent(assist.TTS_START, {"tts_input": Synthesize.from_event(event).text}))
        elif Error.is_type(event.type):
            err = Error.from_event(event)
            post(m.HaEvent(assist.ERROR, {"message": err.text, "code": err.code or ""}))
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self.tts, self.tts_rate, self.tts_width = [], start.rate, start.width
        elif AudioChunk.is_type(event.type) and self.tts is not None:
            chunk = AudioChunk.from_event(event)
            if chunk.width != 2 or chunk.channels != 1:
                from wyoming.audio import AudioChunkConverter
                chunk = AudioChunkConverter(rate=chunk.rate, width=2, channels=1).convert(chunk)
            self.tts.append(chunk.audio)
        elif AudioStop.is_type(event.type) and self.tts is not None:
            audio = np.frombuffer(b"".join(self.tts), np.int16).astype(np.float32) / 32768
            self.tts = None
            # In a run it is the reply; otherwise an announcement (Home Assistant waits for played).
            post(m.HaEvent(assist.TTS_AUDIO, {"audio": audio, "rate": self.tts_rate}))
        elif event.type in TIMERS:
            data = event.data or {}
            timer_id = str(data.get("id", "?"))
            if event.type in ("timer-cancelled", "timer-finished"):
                self.sat.timers.pop(timer_id, None)
            else:
                self.sat.timers[timer_id] = {"id": timer_id, "name": data.get("name") or "",
                                             "total_s": data.get("total_seconds"), "active": data.get("is_active", True)}
            log.info("Home Assistant timer %s: %s", timer_id, event.type.split("-", 1)[1])
            post(m.HaTimer(TIMERS[event.type], timer_id, data.get("name") or ""))
        return True

    def _info(self):
        from wyoming.info import Attribution, Info, Satellite, WakeModel, WakeProgram

        s, w = self.sat.settings, self.sat.d.settings.wake
        voiced = Attribution(name="voiced", url="")
        models = [WakeModel(name=n, description=n, phrase=n.replace("_", " "), attribution=voiced, installed=True,
                            languages=["en"], version=None) for n in w.models]
        return Info(satellite=Satellite(name=s.friendly_name, description="voiced", attribution=voiced, installed=True,
                                        version=None, area=None, has_vad=False, active_wake_words=list(w.models),
                                        max_active_wake_words=len(w.models), supports_trigger=False),
                    wake=[WakeProgram(name="voiced", description="openWakeWord in voiced", attribution=voiced,
                                      installed=True, version=None, models=models)])
