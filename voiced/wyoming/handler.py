"""One Wyoming connection:
- Describe -> Info; Ping -> Pong.
- [Transcribe], AudioStart, AudioChunk..., AudioStop -> Transcript (audio with neither
  Transcribe nor Detect before it is transcribed, as wyoming-faster-whisper does).
- Synthesize -> AudioStart, AudioChunk..., AudioStop. Streamed text: SynthesizeStart,
  SynthesizeChunk..., SynthesizeStop -> that for each sentence as soon as it is complete,
  then SynthesizeStopped (the Synthesize sent alongside for older servers is ignored).
- Detect, then audio -> Detection each time the wake word fires; NotDetected at AudioStop
  if it never did."""
from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)
from wyoming.wake import Detect, Detection, NotDetected

from ..audio import dsp
from ..engines.base import EngineError
from ..text import SentenceSplitter
from .audio import SAMPLES_PER_CHUNK, MonoPcm, audio_chunks
from .client import BUSY
from .queue import QueueFull

log = logging.getLogger(__name__)
RATE = 16_000
WAKE_FRAME = 1280          # openWakeWord's 80 ms step
REFUSE_READ_S = 5.0        # a refused client's next event must come within this
WRITE_TIMEOUT_S = 30.0     # an answer's event must be taken by the client within this


class VoicedHandler(AsyncEventHandler):
    def __init__(self, reader, writer, service):
        super().__init__(reader, writer)
        self.service = service
        self.mode: str | None = None          # "asr", "wake" or "discard" while audio flows
        self.pcm = MonoPcm(RATE)
        self.language = ""                    # asked for by the last transcribe event
        self.detector = None
        self.wake_names: set[str] | None = None
        self.detected = False
        self.wake_pending = np.zeros(0, np.int16)
        self.splitter: SentenceSplitter | None = None   # streamed text (synthesize-start .. stop)

    async def run(self) -> None:
        if not self.service.connect():
            await self._refuse()
            return
        try:
            await self._serve()
            if self.mode == "asr":           # (a wake word stream has no end of its own: not news)
                log.info("wyoming: client %s went away mid-stream (%.1f s of audio); its request is dropped",
                         self._peer(), self.pcm.seconds)
        except (ConnectionError, asyncio.IncompleteReadError, EOFError) as exc:
            log.info("wyoming: client %s went away mid-event (%s)", self._peer(), type(exc).__name__)
        except asyncio.TimeoutError:
            log.warning("wyoming: client %s stopped reading its answer for %g s; connection closed",
                        self._peer(), WRITE_TIMEOUT_S)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:   # not JSON, not an event, bad payload
            log.warning("wyoming: client %s sent something that is not a Wyoming event (%s: %.120s); "
                        "connection closed", self._peer(), type(exc).__name__, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one client's failure must not leak a task traceback
            log.error("wyoming: connection from %s failed: %s: %.200s", self._peer(), type(exc).__name__, exc)
        finally:
            self.service.disconnect()
            self._release_detector()
            self.writer.close()

    async def _serve(self) -> None:
        """AsyncEventHandler.run(), but a line that is not an event raises (the library's reader
        takes it for the end of the connection, silently)."""
        self._is_running = True
        while self._is_running:
            line = await self.reader.readline()      # ValueError past the reader's 64 KiB line limit
            if not line:
                return
            header = json.loads(line)
            if not isinstance(header, dict) or not isinstance(header.get("type"), str):
                raise ValueError(f"no event type in {line[:60]!r}")
            data = header.get("data") or {}
            if header.get("data_length"):
                data = {**data, **json.loads(await self.reader.readexactly(int(header["data_length"])))}
            payload = None
            if header.get("payload_length"):
                payload = await self.reader.readexactly(int(header["payload_length"]))
            if not await self.handle_event(Event(type=header["type"], data=data, payload=payload)):
                return

    async def write_event(self, event: Event) -> None:
        """A client that stops reading would hold its model request (and the queue) forever."""
        await asyncio.wait_for(super().write_event(event), WRITE_TIMEOUT_S)

    def _peer(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"

    async def _refuse(self) -> None:
        """Too many clients: "busy" for the first request. An audio stream is read to its end
        first, so the client is not cut off while it still sends (and sees the error)."""
        try:
            event = await asyncio.wait_for(async_read_event(self.reader), REFUSE_READ_S)
            if event is not None:
                await self.write_event(Error(text=f"server busy: {self.service.settings.max_clients} clients "
                                                  "connected (max_clients)", code=BUSY).event())
            while event is not None and (Transcribe.is_type(event.type) or AudioStart.is_type(event.type)
                                         or AudioChunk.is_type(event.type)):
                event = await asyncio.wait_for(async_read_event(self.reader), REFUSE_READ_S)
        except (OSError, EOFError, asyncio.TimeoutError):
            pass
        finally:
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self._dispatch(event)
        except QueueFull as exc:
            log.warning("wyoming: %s", exc)
            await self.write_event(Error(text=str(exc), code=BUSY).event())
        except (EngineError, ValueError) as exc:
            log.error("wyoming: %s failed: %s", event.type, exc)
            await self.write_event(Error(text=f"{event.type} failed: {exc}", code="failed").event())
        except asyncio.TimeoutError:           # write_event(): the client stopped reading
            log.warning("wyoming: client %s stopped reading its answer for %g s; connection closed",
                        self._peer(), WRITE_TIMEOUT_S)
            return False
        except ConnectionError as exc:         # the client went away: end this connection only
            log.info("wyoming: client %s went away during %s (%s)", self._peer(), event.type, type(exc).__name__)
            return False
        except Exception:  # a bug with one request must not take the server (or the daemon) down
            log.exception("wyoming: %s crashed", event.type)
            await self.write_event(Error(text=f"{event.type} failed: internal error", code="internal").event())
        # A stream that failed mid-way: its remaining chunks are dropped, not a new request.
        self.mode = "discard" if AudioChunk.is_type(event.type) else None
        self._release_detector()
        return True

    async def _dispatch(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.describe().event())
        elif Ping.is_type(event.type):   # clients check the connection with it
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            self.mode, self.pcm = "asr", MonoPcm(RATE)
            # "de", "de-DE" or "de_DE": Whisper knows languages, not regions.
            self.language = (Transcribe.from_event(event).language or "").replace("_", "-").split("-")[0].lower()
        elif Detect.is_type(event.type):
            await self._start_wake(Detect.from_event(event).names)
        elif AudioStart.is_type(event.type):
            if self.mode is None:
                self.mode = "asr"
            if self.mode == "asr":
                self.pcm = MonoPcm(RATE)
        elif AudioChunk.is_type(event.type):
            await self._audio(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            await self._audio_stop()
        elif SynthesizeStart.is_type(event.type):
            self.splitter = SentenceSplitter()
        elif SynthesizeChunk.is_type(event.type) and self.splitter is not None:
            for sentence in self.splitter.feed(SynthesizeChunk.from_event(event).text):
                await self._synthesize(sentence)
        elif SynthesizeStop.is_type(event.type) and self.splitter is not None:
            rest, self.splitter = " ".join(self.splitter.flush()), None
            if rest.strip():
                await self._synthesize(rest)
            await self.write_event(SynthesizeStopped().event())
        elif Synthesize.is_type(event.type):
            if self.splitter is None:   # while streaming it only repeats the text, for older servers
                await self._synthesize(Synthesize.from_event(event).text)
        else:
            log.debug("wyoming: ignoring %s", event.type)
        return True

    # -- speech-to-text ----------------------------------------------------------------
    async def _audio(self, chunk: AudioChunk) -> None:
        if self.mode == "discard":
            return
        if self.mode == "wake":
            await self._feed_wake(self.pcm.convert(chunk))
            return
        self.mode = self.mode or "asr"
        self.pcm.add(chunk)
        if self.pcm.seconds > self.service.settings.max_audio_s:
            self.pcm = MonoPcm(RATE)
            raise ValueError(f"audio longer than max_audio_s = {self.service.settings.max_audio_s:g} s")

    async def _audio_stop(self) -> None:
        mode, self.mode = self.mode, None
        if mode == "discard":
            return
        if mode == "wake":
            if not self.detected:
                await self.write_event(NotDetected().event())
            self._release_detector()
            return
        audio, self.pcm = self.pcm.as_float(), MonoPcm(RATE)
        language, self.language = self.language, ""
        text, language = await self.service.transcribe(audio, language)
        await self.write_event(WyomingTranscript(text=text, language=language or None).event())

    # -- text-to-speech ----------------------------------------------------------------
    async def _synthesize(self, text: str) -> None:
        text = text.strip()
        limit = self.service.settings.max_text_chars
        if not text:
            raise ValueError("synthesize: empty text")
        if len(text) > limit:
            raise ValueError(f"synthesize: text of {len(text)} characters is over max_text_chars = {limit}")
        rate = None
        async for chunk in self.service.synthesize(text):
            if rate is None:
                rate = chunk.sample_rate
                await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            # One rate per reply, the AudioStart's, even if a fallback engine took over mid-way.
            audio = dsp.resample(chunk.audio, chunk.sample_rate, rate)
            for event in audio_chunks(audio, rate, SAMPLES_PER_CHUNK):
                await self.write_event(event.event())
        if rate is None:   # nothing to say (e.g. only punctuation): still a well-formed answer
            await self.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        await self.write_event(AudioStop().event())

    # -- wake word ---------------------------------------------------------------------
    async def _start_wake(self, names: list[str] | None) -> None:
        self._release_detector()
        ours = set(self.service.wake_names)
        if names and not ours & set(names):
            raise ValueError(f"detect: no wake word {names} here (this server has {sorted(ours)})")
        self.wake_names = set(names) & ours if names else None
        self.detector = await asyncio.to_thread(self.service.detectors.acquire)
        self.mode, self.detected, self.pcm = "wake", False, MonoPcm(RATE)
        self.wake_pending = np.zeros(0, np.int16)
        self.wake_samples = 0          # audio since Detect: the Detection's timestamp

    async def _feed_wake(self, pcm: bytes) -> None:
        audio = np.concatenate([self.wake_pending, np.frombuffer(pcm, np.int16)])
        whole = len(audio) - len(audio) % WAKE_FRAME
        self.wake_pending = audio[whole:]
        start_ms = self.wake_samples * 1000 // RATE
        self.wake_samples += whole
        if whole:
            for detection, offset in await asyncio.to_thread(self._detect, audio[:whole]):
                self.detected = True
                log.info("wyoming: wake word %s (score %.2f)", detection.model, detection.score)
                await self.write_event(Detection(name=detection.model, timestamp=start_ms + offset).event())

    def _detect(self, audio: np.ndarray) -> list[tuple]:
        """(detection, ms into `audio` where its frame ends) for each firing."""
        found = []
        for start in range(0, len(audio), WAKE_FRAME):
            d = self.detector.process(audio[start:start + WAKE_FRAME])
            if d is not None and (self.wake_names is None or d.model in self.wake_names):
                found.append((d, (start + WAKE_FRAME) * 1000 // RATE))
        return found

    def _release_detector(self) -> None:
        if self.detector is not None:
            self.service.detectors.release(self.detector)
            self.detector = None
