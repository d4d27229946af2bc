"""The daemon: wires capture -> wake word -> end-pointing -> STT -> responder -> TTS -> playback.

Threads: the capture reader (audio/capture.py), this listen loop (wake word and VAD on
each 80 ms frame: cheap, never blocks), and one worker per turn for the slow stages, so
the microphone keeps being drained while Whisper and the TTS work.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from .audio import dsp
from .audio.capture import Capture
from .audio.playback import Playback
from .config import Settings
from .engines.base import EngineError, EngineInfo
from .engines.factory import make_stt, make_tts
from .pipeline import Pipeline, PipelineState as S
from .responder import Context, make_responder

log = logging.getLogger(__name__)
RATE = 16_000
# openWakeWord fires ~0.1 s before the wake phrase ends; skip that tail so the end of
# "jarvis" does not count as the start of the request.
WAKE_TAIL_S = 0.25


class Daemon:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.pipeline = Pipeline()
        self.capture = Capture(settings.audio)
        self.playback = Playback(settings.audio)
        self.responder = make_responder(settings.responder)
        self.context = Context(status=self.status_line)
        self.stt = self.tts = self.wake = self.endpointer = None
        self.engines: dict[str, EngineInfo] = {}
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._gate_was_closed = False
        self._skip_frames = 0
        self.started_at = time.monotonic()

    # -- start/stop ---------------------------------------------------------
    def load(self) -> None:
        """Load every model before listening, so the first turn is as fast as the rest."""
        from .models.openwakeword_assets import assets_dir
        from .triggers.wakeword import WakeWordDetector
        from .vad import make_vad, Endpointer

        t0 = time.monotonic()
        self.wake = WakeWordDetector(self.settings.wake, assets_dir(self.settings))
        self.endpointer = Endpointer(make_vad(self.settings.vad, assets_dir(self.settings)), self.settings.vad)
        self.stt, self.engines["stt"] = make_stt(self.settings)
        self.tts, self.engines["tts"] = make_tts(self.settings)
        if self.settings.stt.warmup:
            self.stt.warmup()
        self.tts.warmup()
        log.info("models ready in %.1f s: %s", time.monotonic() - t0, self.status_line())

    def start(self) -> None:
        self.load()
        self.capture.start()
        if not self.capture.wait_open(5.0):
            log.warning("microphone not open yet (%s); voiced keeps retrying", self.capture.health().detail)
        self.pipeline.to(S.IDLE)
        log.info("listening for %s", ", ".join(self.settings.wake.models))

    def stop(self) -> None:
        self._stop.set()
        if self.pipeline.state != S.STOPPING:
            self.pipeline.to(S.STOPPING)
        self.playback.stop()
        self.capture.stop()
        if self._worker:
            self._worker.join(5.0)

    def status_line(self) -> str:
        parts = [f"{self.pipeline.state.value}", "wake " + "/".join(self.settings.wake.models)]
        for role in ("stt", "tts"):
            if role in self.engines:
                e = self.engines[role]
                parts.append(f"{role.upper()} {e.name} on {e.device}")
        return ", ".join(parts)

    # -- listen loop (fast path) -------------------------------------------
    def run(self) -> None:
        while not self._stop.is_set():
            frame = self.capture.read(timeout=0.5)
            if frame is None:
                continue
            state = self.pipeline.state
            if state == S.IDLE:
                self._listen_for_wake(frame)
            elif state == S.LISTENING:
                self._record(frame)

    def _wake_gate_open(self) -> bool:
        if not self.settings.wake.mute_during_playback:
            return True
        quiet_for = time.monotonic() - self.playback.last_end
        return not self.playback.playing and quiet_for >= self.settings.wake.playback_tail_s

    def _listen_for_wake(self, frame: np.ndarray) -> None:
        if not self._wake_gate_open():
            self._gate_was_closed = True
            return
        if self._gate_was_closed:
            # Whatever the detector buffered before/while we spoke must not fire now.
            self.wake.reset()
            self._gate_was_closed = False
        detection = self.wake.process(frame)
        if detection is not None:
            log.info("wake word %s (score %.2f)", detection.model, detection.score)
            self.begin_listening(f"wake:{detection.model}")

    def begin_listening(self, trigger: str, skip_s: float = WAKE_TAIL_S) -> None:
        self.pipeline.begin_turn(trigger)
        self._skip_frames = int(round(skip_s * 1000 / self.settings.audio.chunk_ms))
        self.endpointer.start()
        self.pipeline.to(S.LISTENING)

    def _record(self, frame: np.ndarray) -> None:
        if self._skip_frames > 0:
            self._skip_frames -= 1
            return
        result = self.endpointer.feed(frame)
        if result is None:
            return
        if result.kind == "no_speech":
            self.wake.reset()
            self.pipeline.end_turn("no speech")
            self.pipeline.to(S.IDLE)
            return
        # End of speech happened `hangover` before the VAD could be sure of it.
        lag = result.samples_since_speech_end / RATE
        self.pipeline.mark("end_of_speech", at=time.monotonic() - lag)
        self.pipeline.to(S.TRANSCRIBING)
        self._worker = threading.Thread(target=self._turn, args=(result.audio,), name="turn", daemon=True)
        self._worker.start()

    # -- the slow stages, off the listen loop -----------------------------
    def prepare_request(self, pcm: np.ndarray) -> tuple[np.ndarray | None, str]:
        a = self.settings.audio
        audio = dsp.int16_to_float(pcm) if pcm.dtype == np.int16 else pcm.astype(np.float32)
        if a.remove_dc:
            audio = dsp.DcBlocker(RATE).process(audio)
        quality = dsp.check_quality(audio, a.min_level_dbfs, a.max_clipped_fraction)
        if not quality.ok:
            return None, quality.reason
        if a.noise_suppression:
            audio = dsp.suppress_noise(audio)
        if a.normalize_input:
            audio = dsp.normalize(audio, a.input_target_dbfs)
        return audio, ""

    def _turn(self, pcm: np.ndarray) -> None:
        try:
            self.answer(pcm)
        except EngineError as exc:
            log.error("turn failed: %s", exc)
            self.pipeline.end_turn(f"error: {exc}")
        except Exception:  # a bug in one turn must not take the daemon down
            log.exception("turn crashed")
            self.pipeline.end_turn("error: internal")
        finally:
            self.wake.reset()
            if self.pipeline.state not in (S.STOPPING, S.IDLE):
                self.pipeline.to(S.IDLE)

    def answer(self, pcm: np.ndarray) -> None:
        audio, why = self.prepare_request(pcm)
        if audio is None:
            log.info("capture dropped: %s", why)
            self.pipeline.end_turn(f"dropped: {why}")
            return
        transcript = self.stt.transcribe(audio)
        self.pipeline.mark("transcript", transcript=transcript.text)
        if not transcript.text:
            log.info("nothing to answer: %s (model said %r)", transcript.rejected, transcript.raw_text)
            self.pipeline.end_turn(f"rejected: {transcript.rejected}")
            return
        self.pipeline.to(S.THINKING)
        reply = self.responder.respond(transcript.text, self.context)
        if reply.note:
            log.info("responder %s: %s", reply.source, reply.note)
        self.pipeline.mark("reply", reply=reply.text)
        self.context.history.append((transcript.text, reply.text))
        del self.context.history[:-20]
        self.pipeline.to(S.SPEAKING)
        self.playback.play(self.tts.synthesize(reply.text), on_first_audio=lambda: self.pipeline.mark("first_audio"))
        self.pipeline.end_turn("answered" if self.playback.ok else f"not played: {self.playback.detail}")
