"""The daemon: wires capture -> wake word -> end-pointing -> STT -> responder -> TTS -> playback.

Threads: the capture reader (audio/capture.py), this listen loop (wake word and VAD on
each 80 ms frame: cheap, never blocks), and one worker per turn for the slow stages, so
the microphone keeps being drained while Whisper and the TTS work.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace

import numpy as np

from . import logs
from .audio import dsp
from .audio.capture import Capture
from .audio.earcons import Earcons
from .audio.playback import Playback
from .config import Settings
from .deadlines import StageTimeout, call_with_deadline, iter_with_deadline
from .early_stt import EarlyTranscript
from .engines.base import EngineError, Transcript, VoiceStyle
from .engines.phrase_cache import PhraseCache
from .events import EventHub
from .listen_loop import ListenLoop
from .pipeline import Pipeline
from .pipeline import PipelineState as S
from .recovery import GpuManager, recovering_stt, recovering_tts, reprobe_forever
from .responder import Context, Reply, make_responder
from .stats import TurnStats
from .systemd import Notifier, Watchdog, liveness
from .voices import VoiceError, hints, open_store
from .wyoming.server import wyoming_status

log = logging.getLogger(__name__)
RATE = 16_000
# The responder bounds its own calls ([responder] timeout_s); its stage deadline adds this.
RESPOND_MARGIN_S = 5.0


class Daemon(ListenLoop):
    def __init__(self, settings: Settings, notifier: Notifier | None = None):
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.pipeline = Pipeline()
        self.events = EventHub()
        self.stats = TurnStats()
        self.pipeline.subscribe(self._on_state)
        self.pipeline.on_turn_end(self._on_turn_end)
        self.capture = Capture(settings.audio)
        self.playback = Playback(settings.audio)
        self.responder = make_responder(settings.responder)
        self.voices = open_store(settings)
        self.context = Context(status=self.status_line, style_hint=self._style_hint)
        self.stt = self.tts = self.wake = self.endpointer = None
        self.gpu = GpuManager(settings)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._gate_was_closed = False
        self.echo = None                            # EchoGuard: the reply's own wake-word score
        self._barge_frames: list[np.ndarray] | None = None   # audio since a barge-in, until idle
        self._barge_at, self._barge_trigger, self._barge_turn = 0.0, "", -1
        self._wake_reset = False   # set by other threads; the listen loop resets the detector
        self._skip_frames = 0
        self._hung_stages = 0   # abandoned stages in a row
        self._follow_up = False  # set by a spoken answer: listen again without the wake word
        self._record_lock = threading.RLock()
        self._early: EarlyTranscript | None = None   # a transcription started at a pause
        self.earcons = Earcons(settings.earcons)
        self.phrases = PhraseCache(settings.tts.phrase_cache_items)
        self.hotkey = None
        self.wyoming = None                        # [wyoming] server, started after the models load
        self._hotkey_events: deque = deque()       # filled by the hotkey thread, drained by run()
        self._ptt: list[np.ndarray] | None = None  # push-to-talk: frames recorded while held
        self.started_at = time.monotonic()
        self.last_frame_at = time.monotonic()
        self.state_since = time.monotonic()
        self.watchdog = Watchdog(self.notifier, self.alive, self.notifier.watchdog_interval())
        logs.set_context(lambda: (self.pipeline.current.id if self.pipeline.current else None,
                                  self.pipeline.state.value))

    # -- start/stop ---------------------------------------------------------
    def load(self) -> None:
        """Load every model before listening, so the first turn is as fast as the rest."""
        from .models.openwakeword_assets import assets_dir
        from .triggers.wake_wyoming import make_wake_detector
        from .vad import Endpointer, make_vad

        t0 = time.monotonic()
        self.wake = make_wake_detector(self.settings)   # openWakeWord here, or a remote Wyoming service
        self._load_echo_guard()
        self.endpointer = Endpointer(make_vad(self.settings.vad, assets_dir(self.settings)), self.settings.vad)
        # Recovering wrappers own device choice: OOM retry, CPU fallback, GPU re-probe.
        self.stt, _ = recovering_stt(self.settings, self.gpu)
        self.tts, _ = recovering_tts(self.settings, self.gpu)
        if self.settings.stt.warmup:
            self.stt.warmup()
        self.tts.warmup()
        log.info("models ready in %.1f s: %s", time.monotonic() - t0, self.status_line())

    def _load_echo_guard(self) -> None:
        """Barge-in needs a second detector that scores what voiced itself says."""
        from .models.openwakeword_assets import assets_dir
        from .triggers.echo import EchoGuard
        from .triggers.wakeword import WakeWordDetector, WakeWordError

        w, self.echo = self.settings.wake, None
        if w.barge_in:
            try:
                self.echo = EchoGuard(WakeWordDetector(w, assets_dir(self.settings)), w.echo_threshold,
                                      w.echo_window_s)
            except WakeWordError as exc:   # e.g. a satellite with a remote wake word and no local models
                log.warning("barge-in by wake word is off: its echo guard needs the local wake word "
                            "models (%s); the wake word is muted while voiced speaks", exc)
        self.playback.observer = self.echo

    def start(self) -> None:
        self.load()
        if self.settings.wyoming.enabled:   # Wyoming (voiced/wyoming): the models offered to clients
            from .wyoming.server import start_for_daemon
            self.wyoming = start_for_daemon(self)
        self.capture.start()
        if not self.capture.wait_open(5.0):
            log.warning("microphone not open yet (%s); voiced keeps retrying", self.capture.health().detail)
        if self._stop.is_set():   # SIGTERM while the models loaded
            return
        self.pipeline.to(S.IDLE)
        self._start_hotkey()
        log.info("listening for %s", ", ".join(self.settings.wake.models))
        self.notifier.ready(self.status_line())
        self.watchdog.start()
        threading.Thread(target=reprobe_forever, args=([self.stt, self.tts], self.settings.gpu.reprobe_s, self._stop),
                         name="gpu-reprobe", daemon=True).start()

    def stop(self) -> None:
        """Cut playback, close streams; safe to call from a signal handler."""
        self.notifier.stopping()
        self._stop.set()
        if self.pipeline.state != S.STOPPING:
            self.pipeline.to(S.STOPPING)
        self.playback.stop()

    def shutdown(self) -> None:
        """After run() returns: join the threads in order (input, processing)."""
        self.watchdog.stop()
        if self.wyoming:
            self.wyoming.stop()
        if self.hotkey:
            self.hotkey.stop()
        self.capture.stop()
        if self._worker:
            self._worker.join(5.0)

    def reload(self, settings: Settings) -> None:
        """SIGHUP: apply what can change live (responder, wake word, VAD, log level)."""
        self.notifier.reloading()
        restart_needed = [k for k in ("audio", "stt", "tts", "models", "gpu", "wyoming")
                          if getattr(settings, k) != getattr(self.settings, k)]
        live_tts = {"speed", "pitch"}   # read per reply (default_style), so they apply at once
        if "tts" in restart_needed and (settings.tts.model_dump(exclude=live_tts)
                                        == self.settings.tts.model_dump(exclude=live_tts)):
            restart_needed.remove("tts")
        old, self.settings = self.settings, settings
        if settings.responder != old.responder:
            self.responder = make_responder(settings.responder)
        if settings.wake != old.wake or settings.vad != old.vad:
            from .models.openwakeword_assets import assets_dir
            from .triggers.wake_wyoming import make_wake_detector
            from .vad import Endpointer, make_vad

            old_wake, self.wake = self.wake, make_wake_detector(settings)
            getattr(old_wake, "close", lambda: None)()   # a remote detector's connection thread
            self._load_echo_guard()
            self.endpointer = Endpointer(make_vad(settings.vad, assets_dir(settings)), settings.vad)
        if settings.hotkey != old.hotkey:
            if self.hotkey:
                self.hotkey.stop()
                self.hotkey = None
            self._start_hotkey()
        self.earcons = Earcons(settings.earcons)
        self.voices = open_store(settings)
        logging.getLogger().setLevel(settings.log.level)
        if restart_needed:
            log.warning("config reloaded; changes to [%s] apply after a restart (systemctl restart voiced)",
                        "], [".join(restart_needed))
        else:
            log.info("config reloaded")
        self.notifier.ready(self.status_line())

    def alive(self) -> tuple[bool, str]:
        """What the systemd watchdog asks: frames flow and no stage is stuck."""
        w, now = self.settings.watchdog, time.monotonic()
        if self._hung_stages >= w.hung_stages_to_restart:
            return False, f"{self._hung_stages} stages in a row were abandoned (hung engine)"
        state = self.pipeline.state
        stage = state.value if state in (S.TRANSCRIBING, S.THINKING, S.SPEAKING) else None
        stage_deadline = max(w.stt_timeout_s, w.tts_chunk_timeout_s, self.settings.responder.timeout_s) * 2
        return liveness(now - self.last_frame_at, w.frame_deadline_s, stage, now - self.state_since, stage_deadline)

    # -- stages, each bounded by its deadline --------------------------------
    def _bounded(self, stage: str, fn, seconds: float):
        try:
            result = call_with_deadline(stage, fn, seconds)
        except StageTimeout:
            self._hung_stages += 1
            raise
        self._hung_stages = 0
        return result

    def default_style(self) -> VoiceStyle:
        """The default voice with its controls ([tts] speed/pitch when there is none)."""
        try:
            return self.voices.style()
        except VoiceError as exc:
            log.warning("default voice unusable (%s); the configured voice speaks", exc)
            return VoiceStyle(speed=self.settings.tts.speed, pitch=self.settings.tts.pitch)

    def _style_hint(self) -> str:
        if not self.settings.voices.responder_styles:
            return ""
        return hints.instruction(self.settings.voices, [v.name for v in self.voices.list()])

    def _speech(self, text: str, style: VoiceStyle | None = None):
        """The reply's audio, sentence by sentence, each within the TTS deadline."""
        style = style or self.default_style()
        key = (self.tts.info.name if self.tts.info else "", text, style, _mtime(style.clip))

        def speech():
            if self.settings.tts.engine == "wyoming":
                # Not cached here: while the remote is down the local voice answers, and that
                # audio must not be replayed for the remote once it is back.
                return self.tts.synthesize(text, style)
            return self.phrases.speak(key, lambda: self.tts.synthesize(text, style))
        try:
            yield from iter_with_deadline("tts", speech, self.settings.watchdog.tts_chunk_timeout_s)
        except StageTimeout:
            self._hung_stages += 1
            raise
        self._hung_stages = 0

    def _on_state(self, old: S, new: S, turn) -> None:
        self.state_since = time.monotonic()
        self.events.publish("state", state=new.value, previous=old.value, turn=turn.id if turn else None)
        if new not in (S.STARTING, S.STOPPING):
            self.notifier.status(self.status_line())

    def _on_turn_end(self, turn) -> None:
        self.stats.add(turn)
        self.events.publish("turn", **turn_json(turn))

    def status_line(self) -> str:
        state = self.pipeline.state
        what = {S.IDLE: "listening for " + "/".join(self.settings.wake.models)}.get(state, state.value)
        parts = [what]
        if self.capture.started and not self.capture.health().ok:
            parts.append("MIC DOWN: " + self.capture.health().detail)
        for role in ("stt", "tts"):
            engine = getattr(self, role)
            if engine is not None and engine.info is not None:   # live info: changes after a GPU fault
                parts.append(f"{role.upper()} {engine.info.name} on {engine.info.device}"
                             + (" (GPU fault: on CPU)" if engine.state["degraded"] else ""))
        return ", ".join(parts)

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

    def _turn(self, pcm: np.ndarray, early: EarlyTranscript | None = None) -> None:
        try:
            self.answer(pcm, early)
        except EngineError as exc:
            log.error("turn failed: %s", exc)
            self.pipeline.end_turn(f"error: {exc}")
            self._cue(self.earcons.failed())
        except Exception:  # a bug in one turn must not take the daemon down
            log.exception("turn crashed")
            self.pipeline.end_turn("error: internal")
            self._cue(self.earcons.failed())
        finally:
            self.reset_wake()
            if self.pipeline.state not in (S.STOPPING, S.IDLE):
                self.pipeline.to(S.IDLE)
            if self._follow_up and not self._stop.is_set():
                self._follow_up = False
                self._await_follow_up()

    def _await_follow_up(self) -> None:
        """Listen again without the wake word once our own voice has died away."""
        time.sleep(self.settings.wake.playback_tail_s)   # the reply's echo must not count as speech
        if self.begin_listening("follow-up", skip_s=0, wait_s=self.settings.conversation.follow_up_s):
            log.info("listening %.0f s for a follow-up", self.settings.conversation.follow_up_s)

    def _save_request(self, pcm: np.ndarray) -> None:
        from pathlib import Path

        from .audio.decode import write_wav

        folder = Path(self.settings.audio.save_requests_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        turn = self.pipeline.current
        write_wav(folder / f"request-{time.strftime('%Y%m%d-%H%M%S')}-{turn.id if turn else 0}.wav",
                  dsp.int16_to_float(pcm) if pcm.dtype == np.int16 else pcm, RATE)

    def answer(self, pcm: np.ndarray, early: EarlyTranscript | None = None) -> None:
        if self.settings.audio.save_requests_dir:
            self._save_request(pcm)
        understood = self._understand(pcm, early)
        if understood is None:
            return
        _transcript, reply = understood
        self.pipeline.to(S.SPEAKING)
        self.playback.play(self._speech(reply.text, reply.style), on_first_audio=lambda: self.pipeline.mark("first_audio"))
        cut = self.playback.stopped
        self.pipeline.end_turn(self._played_outcome("answered"))
        self._follow_up = self.settings.conversation.follow_up_s > 0 and self.playback.ok and not cut

    def transcribe_request(self, pcm: np.ndarray) -> Transcript | None:
        """Quality check + STT (None if the audio is not worth transcribing). The engines take
        one call at a time, so an early transcription never runs beside the turn's own."""
        audio, _why = self.prepare_request(pcm)
        return None if audio is None else self.stt.transcribe(audio)

    def _early_transcript(self, early: EarlyTranscript) -> Transcript | None:
        try:
            transcript = self._bounded("stt", early.result, self.settings.watchdog.stt_timeout_s)
        except EngineError as exc:
            log.info("early transcription failed (%s); transcribing the whole request", exc)
            return None
        if transcript is not None:
            log.info("transcribed at the pause: started %.2f s before the end-pointer decided, ready %.2f s after",
                     early.decided_at - early.started, max(0.0, early.finished - early.decided_at))
        return transcript

    def _played_outcome(self, done: str) -> str:
        if not self.playback.ok:
            return f"not played: {self.playback.detail}"
        return "interrupted" if self.playback.stopped and not self._stop.is_set() else done

    def _understand(self, pcm: np.ndarray, early: EarlyTranscript | None = None) -> tuple[Transcript, Reply] | None:
        """Quality check, STT and responder for the current turn; None (turn ended) if nothing to answer."""
        transcript = self._early_transcript(early) if early is not None else None
        if transcript is None:
            audio, why = self.prepare_request(pcm)
            if audio is None:
                log.info("capture dropped: %s", why)
                self.pipeline.end_turn(f"dropped: {why}")
                return None
            transcript = self._bounded("stt", lambda: self.stt.transcribe(audio), self.settings.watchdog.stt_timeout_s)
        self.pipeline.mark("transcript", transcript=transcript.text)
        if not transcript.text:
            log.info("nothing to answer: %s (model said %r)", transcript.rejected, transcript.raw_text)
            self.pipeline.end_turn(f"rejected: {transcript.rejected}")
            return None
        self.events.publish("transcript", text=transcript.text, turn=self.pipeline.current.id)
        if is_cancel(transcript.text, self.settings.conversation.cancel_phrases):
            log.info("cancelled by %r", transcript.text)
            self.pipeline.end_turn("cancelled")
            return None
        self.pipeline.to(S.THINKING)
        reply = self._bounded("respond", lambda: self.responder.respond(transcript.text, self.context),
                              self.settings.responder.timeout_s + RESPOND_MARGIN_S)
        if reply.note:
            log.info("responder %s: %s", reply.source, reply.note)
        text, style = hints.styled(reply.text, self.voices, self.settings.voices)
        if style is not None:
            reply = replace(reply, text=text, style=style)
        self.pipeline.mark("reply", reply=reply.text)
        self.events.publish("reply", text=reply.text, source=reply.source, turn=self.pipeline.current.id)
        self.context.history.append((transcript.text, reply.text))
        del self.context.history[:-20]
        return transcript, reply

    # -- entry points for the HTTP API and CLI ------------------------------
    def handle_utterance(self, audio: np.ndarray, trigger: str = "api", style: VoiceStyle | None = None) -> dict | None:
        """A whole recorded request (float32, 16 kHz mono), e.g. from the browser: the reply
        comes back as audio instead of being played (in `style`, else as the reply asks, else
        the default voice). None if the daemon is busy."""
        if self.pipeline.claim(trigger, S.TRANSCRIBING, mark="end_of_speech") is None:
            return None
        reply_audio = np.zeros(0, np.float32)
        try:
            understood = self._understand(audio)
            if understood is None:
                turn = self.pipeline.turns[-1]
                return {"transcript": "", "reply": "", "audio": None, "outcome": turn.outcome,
                        "timings": turn.durations(), "turn": turn.id}
            _transcript, reply = understood
            self.pipeline.to(S.SPEAKING)
            parts, rate = [], self.settings.audio.output_rate
            for chunk in self._speech(reply.text, style or reply.style):
                if not parts:
                    self.pipeline.mark("first_audio")
                parts.append(dsp.resample(chunk.audio, chunk.sample_rate, rate))
            if parts:
                reply_audio = dsp.normalize(np.concatenate(parts), self.settings.audio.output_target_dbfs, rate=rate)
            turn = self.pipeline.end_turn("answered")
        except EngineError as exc:
            log.error("turn failed: %s", exc)
            turn = self.pipeline.end_turn(f"error: {exc}")
            raise
        finally:
            if self.pipeline.state not in (S.STOPPING, S.IDLE):
                self.pipeline.to(S.IDLE)
        return {"transcript": turn.transcript, "reply": turn.reply, "audio": reply_audio,
                "sample_rate": self.settings.audio.output_rate, "outcome": turn.outcome,
                "timings": turn.durations(), "turn": turn.id}

    def say(self, text: str, style: VoiceStyle | None = None) -> bool:
        """Speak text through the speaker now (API/CLI), in `style` (default: the default
        voice); False if busy."""
        if self.pipeline.claim("say", S.SPEAKING, mark="reply") is None:
            return False
        self.pipeline.mark("", reply=text)

        def speak():
            try:
                self.playback.play(self._speech(text, style), on_first_audio=lambda: self.pipeline.mark("first_audio"))
                self.pipeline.end_turn(self._played_outcome("spoken"))
            except EngineError as exc:
                self.pipeline.end_turn(f"error: {exc}")
            finally:
                self.reset_wake()
                if self.pipeline.state not in (S.STOPPING, S.IDLE):
                    self.pipeline.to(S.IDLE)
        self._worker = threading.Thread(target=speak, name="say", daemon=True)
        self._worker.start()
        return True

    def status(self) -> dict:
        """Everything the status page and `voiced status` show, as plain JSON types."""
        cap, now = self.capture.health(), time.monotonic()
        alive, why = self.alive()
        return {
            "state": self.pipeline.state.value,
            "status_line": self.status_line(),
            "alive": alive, "alive_reason": why,
            "uptime_s": round(now - self.started_at, 1),
            "input": {"device": cap.device, "ok": cap.ok, "detail": cap.detail,
                      "last_frame_age_s": round(cap.last_frame_age_s, 2), "reopens": cap.reopen_count},
            "output": {"device": str(self.settings.audio.output_device), "ok": self.playback.ok,
                       "detail": self.playback.detail},
            "wake_words": list(self.settings.wake.models),
            "engines": {role: {"name": e.info.name, "device": e.info.device, "model": e.info.model,
                               "source": e.info.source, "notes": list(e.info.notes), "recovery": e.state}
                        for role, e in (("stt", self.stt), ("tts", self.tts)) if e is not None and e.info is not None},
            "gpu": self.gpu.vram(),
            "phrase_cache": self.phrases.stats(),
            "wyoming": wyoming_status(self),
            "counts": dict(self.stats.counts),
            "latency": self.stats.latency(),
            "turns": [turn_json(t) for t in list(self.pipeline.turns)[-20:]],
        }


def _mtime(path) -> int | None:
    """A reference clip's version: a voice replaced under the same name must not replay old audio."""
    try:
        return path.stat().st_mtime_ns if path else None
    except OSError:
        return None


def is_cancel(transcript: str, phrases: tuple[str, ...]) -> bool:
    """True when the whole request is a cancel phrase ("Never mind.", "stop!")."""
    words = " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in transcript.lower()).split())
    return words in {" ".join(p.lower().split()) for p in phrases}


def turn_json(turn) -> dict:
    return {"id": turn.id, "trigger": turn.trigger, "time": turn.started, "transcript": turn.transcript,
            "reply": turn.reply, "outcome": turn.outcome, "timings": turn.durations()}
