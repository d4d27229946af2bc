"""The daemon: wiring, start and ordered shutdown. The turn itself is decided in core/.

Threads and what each may do (docs/architecture.md has the full table):
- the owner (core/owner.py; `voiced run`'s main thread): the only writer of the turn state;
- capture, hotkey, web/API, Wyoming, signal handlers, the reload loader: post messages only;
- turn workers (core/turns.py): the slow stages, results posted back;
- speaker (audio/speaker.py): plays replies and earcons one at a time;
- observers (core/observers.py): sd_notify, SSE/metrics events, stats, turn log lines;
- sd-watchdog: reads the owner's snapshot, pings systemd while alive.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from . import logs
from .audio.capture import Capture
from .audio.earcons import Earcons
from .audio.playback import Playback
from .audio.speaker import Speaker
from .config import Settings
from .core import messages as m
from .core.conditioning import prepare_request
from .core.health import Snapshot, liveness, readiness
from .core.observers import Observers
from .core.owner import TurnOwner
from .core.reload import give_memory_back, models_of, retune
from .end_of_turn import load_turn_model as turn_model
from .engines.base import Transcript, VoiceStyle
from .engines.language_voices import LanguageVoices
from .engines.phrase_cache import PhraseCache
from .engines.build import recovering_stt, recovering_tts, reprobe_forever
from .events import EventHub
from .gpu import GpuManager
from .meter import Meter
from .pipeline import PipelineState as S
from .pipeline import describe
from .status import status_report, turn_json
from .responder import Context, make_responder
from .stats import TurnStats
from .systemd import Notifier, Watchdog
from .voices import VoiceError, hints, open_store

log = logging.getLogger(__name__)
RATE = 16_000
# How long an API caller waits for the owner to take its request (it answers in milliseconds).
ANSWER_S = 10.0
# Settings that need a restart; the rest apply at the next idle moment.
RESTART_SECTIONS = ("audio", "stt", "tts", "models", "gpu", "wyoming")
LIVE_TTS = {"speed", "pitch"}   # read per reply (default_style), so they apply at once


class Daemon:
    def __init__(self, settings: Settings, notifier: Notifier | None = None, reload_source=None):
        """reload_source(): the settings to switch to on SIGHUP (raises ConfigError if bad)."""
        self.settings = settings
        self.reload_source = reload_source
        self.notifier = notifier or Notifier()
        self.events = EventHub()
        self.meter = Meter()                       # the status page's live level meter (fed only while watched)
        self.stats = TurnStats()
        self.observers = Observers()
        self.owner = TurnOwner(self)
        self.capture = Capture(settings.audio, sink=self.owner.post_frame)
        self.playback = Playback(settings.audio)
        self.speaker = Speaker(self.playback)
        self.responder = make_responder(settings.responder)
        self.voices = open_store(settings)
        self.context = Context(status=lambda: self.owner.snapshot.status_line, style_hint=self._style_hint)
        self.stt = self.tts = self.wake = self.endpointer = self.echo = None
        self.gpu = GpuManager(settings)
        self.earcons = Earcons(settings.earcons)
        self.phrases = PhraseCache(settings.tts.phrase_cache_items)
        self.language_voices = LanguageVoices(settings)   # replies in other languages
        self.hotkey = None
        self.wyoming = None                        # [wyoming] server, started after the models load
        self.satellite = None                      # [homeassistant]: Home Assistant's voice satellite
        self.loaded = False
        self._loader: threading.Thread | None = None
        self.started_at = time.monotonic()
        self._halt = threading.Event()             # ends the background threads at shutdown
        self.watchdog = Watchdog(self.notifier, self.alive, self.notifier.watchdog_interval())
        logs.set_context(self._log_context)

    @property
    def pipeline(self):
        """The turn record, for reading (the owner alone writes it)."""
        return self.owner.pipeline

    def _log_context(self):
        snap = self.owner.snapshot
        return (snap.turn.id if snap.turn else None, snap.state.value)

    # -- start/stop -----------------------------------------------------------------
    def load(self) -> None:
        """Load every model before listening, so the first turn is as fast as the rest."""
        t0 = time.monotonic()
        self.wake, self.echo, self.endpointer = self._listen_parts(self.settings)
        self.playback.observer = self.echo
        # Recovering wrappers own device choice: OOM retry, CPU fallback, GPU re-probe.
        self.stt, _ = recovering_stt(self.settings, self.gpu)
        self.tts, _ = recovering_tts(self.settings, self.gpu)
        if self.settings.stt.warmup:
            self.stt.warmup()
        self.tts.warmup()
        self.loaded = True
        log.info("models ready in %.1f s: %s", time.monotonic() - t0, self.status_line(self.owner.snapshot))

    def _listen_parts(self, settings: Settings):
        """Wake detector, echo guard and end-pointer for these settings."""
        from .models.openwakeword_assets import assets_dir
        from .triggers.wake_wyoming import make_wake_detector
        from .vad import Endpointer, make_vad

        wake = make_wake_detector(settings)   # openWakeWord here, or a remote Wyoming service
        return wake, self._echo_guard(settings), Endpointer(make_vad(settings.vad, assets_dir(settings)), settings.vad,
                                                            turn_model=turn_model(settings))

    @staticmethod
    def _echo_guard(settings: Settings):
        """Barge-in needs a second detector that scores what voiced itself says."""
        from .models.openwakeword_assets import assets_dir
        from .triggers.echo import EchoGuard
        from .triggers.wakeword import WakeWordDetector, WakeWordError

        w = settings.wake
        if not w.barge_in:
            return None
        try:
            return EchoGuard(WakeWordDetector(w, assets_dir(settings)), w.echo_threshold, w.echo_window_s)
        except WakeWordError as exc:   # e.g. a satellite with a remote wake word and no local models
            log.warning("barge-in by wake word is off: its echo guard needs the local wake word "
                        "models (%s); the wake word is muted while voiced speaks", exc)
            return None

    @property
    def loading(self) -> bool:
        """The start-up loader is still at work (loading models, opening devices)."""
        return self._loader is not None and self._loader.is_alive()

    def run(self, mic: bool = True) -> None:
        """Run the owner on this thread until stop(): load (on a loader thread, so a SIGTERM
        while the models load is heard at once), open the devices, then serve."""
        self._loader = threading.Thread(target=self._start, args=(mic,), name="loader", daemon=True)
        self._loader.start()
        self.owner.run()
        if self.owner.load_error is not None:
            raise self.owner.load_error

    def run_in_thread(self, mic: bool = False) -> threading.Thread:
        """The owner on a thread of its own (tests, embedding)."""
        thread = threading.Thread(target=self.run, args=(mic,), name="owner", daemon=True)
        thread.start()
        return thread

    def _start(self, mic: bool) -> None:
        try:
            if not self.loaded:
                self.load()
            if self.settings.wyoming.enabled:   # Wyoming (voiced/wyoming): the models offered to clients
                from .wyoming.server import start_for_daemon
                self.wyoming = start_for_daemon(self)
            if self.settings.homeassistant.enabled:
                self.start_satellite()
            if mic:
                self.capture.start()
                if not self.capture.wait_open(5.0):
                    log.warning("microphone not open yet (%s); voiced keeps retrying", self.capture.health().detail)
                self._start_hotkey()
        except BaseException as exc:  # noqa: BLE001 - the owner decides (exit 69 for missing weights)
            self.owner.post(m.LoadFailed(exc))
            return
        self.owner.post(m.Loaded())

    def start_satellite(self) -> None:
        """[homeassistant]: serve the ESPHome native API (voiced/homeassistant)."""
        try:
            if self.settings.homeassistant.protocol == "wyoming":
                from .homeassistant.wyoming_satellite import WyomingSatellite as Satellite
            else:
                from .homeassistant.satellite import Satellite
        except ImportError as exc:
            log.error("[homeassistant] enabled, but a package is missing (%s): pip install aioesphomeapi; "
                      "voiced answers by itself", exc)
            return
        self.satellite = Satellite(self)
        self.satellite.start()

    def change_wake_words(self, models: tuple[str, ...]) -> None:
        """Home Assistant chose the wake word(s): built on a thread, swapped in like a reload
        (until a restart or SIGHUP re-reads the config file)."""
        def build():
            new = self.settings.model_copy(update={"wake": self.settings.wake.model_copy(update={"models": models})})
            try:
                parts = {}
                parts["wake"], parts["echo"], parts["endpointer"] = self._listen_parts(new)
            except Exception as exc:  # noqa: BLE001 - e.g. a model name with no file here
                self.owner.post(m.ReloadFailed(f"wake word {', '.join(models)}: {type(exc).__name__}: {exc}"))
                return
            self.owner.post(m.Reloaded(new, parts))
        threading.Thread(target=build, name="wake-change", daemon=True).start()

    def on_ready(self) -> None:
        """The owner went idle for the first time (called on its thread; starts threads only)."""
        self.watchdog.start()
        threading.Thread(target=reprobe_forever, args=([self.stt, self.tts], self.settings.gpu.reprobe_s, self._halt),
                         name="gpu-reprobe", daemon=True).start()

    def stop(self, reason: str = "stop") -> None:
        """Ask the owner to stop. Only posts: safe from a signal handler."""
        self.owner.post(m.Stop(reason))

    def shutdown(self) -> None:
        """After run() returns: stop the threads in order (input, processing, output, observers)."""
        self._halt.set()
        self.watchdog.stop()
        if self.hotkey:
            self.hotkey.stop()
        self.capture.stop()
        if self.wyoming:
            self.wyoming.stop()
        if self.satellite:
            self.satellite.stop()
        job = self.owner.job
        if job is not None and job.thread is not None:
            job.thread.join(1.0)
        self.speaker.close(1.0)
        self.language_voices.close()   # a Piper voice for another language runs in its own process
        self.observers.close(1.0)

    # -- reload: prepared here, swapped in by the owner between turns ---------------------
    def request_reload(self) -> None:
        self.owner.post(m.ReloadRequested())

    def prepare_reload(self) -> None:
        """On the loader thread: read the config and build what a change needs."""
        from .config import ConfigError

        try:
            new = self.reload_source() if self.reload_source else None
        except ConfigError as exc:
            self.owner.post(m.ReloadFailed(str(exc)))
            return
        if new is None:
            self.owner.post(m.ReloadFailed("this daemon has no config file to re-read"))
            return
        parts, old = {}, self.settings
        try:
            if models_of(new.wake) != models_of(old.wake) or new.wyoming != old.wyoming:
                parts["wake"], parts["echo"], parts["endpointer"] = self._listen_parts(new)
            elif new.wake != old.wake or new.vad != old.vad:
                # Same models: keep the loaded ones (each rebuild cost ~130 MB that the
                # allocator kept); only thresholds and timings change, applied by the owner.
                parts["retune"] = True
                if new.vad.engine != old.vad.engine:
                    from .models.openwakeword_assets import assets_dir
                    from .vad import make_vad
                    parts["vad"] = make_vad(new.vad, assets_dir(new))
                if (new.vad.end_of_turn, new.vad.smart_turn_model) != (old.vad.end_of_turn, old.vad.smart_turn_model):
                    parts["turn_model"] = turn_model(new)
                if new.wake.barge_in and self.echo is None:
                    parts["echo"] = self._echo_guard(new)
            if new.responder != old.responder:
                parts["responder"] = make_responder(new.responder)
        except Exception as exc:  # noqa: BLE001 - e.g. a wake model that does not load
            self.owner.post(m.ReloadFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.owner.post(m.Reloaded(new, parts))

    def apply_settings(self, settings: Settings, parts: dict) -> None:
        """On the owner's thread, while idle: swap in the new settings and pieces."""
        old, self.settings = self.settings, settings
        restart = [k for k in RESTART_SECTIONS if getattr(settings, k) != getattr(old, k)]
        if "tts" in restart and settings.tts.model_dump(exclude=LIVE_TTS) == old.tts.model_dump(exclude=LIVE_TTS):
            restart.remove("tts")
        if "wake" in parts:
            old_wake = self.wake
            self.wake, self.echo, self.endpointer = parts["wake"], parts["echo"], parts["endpointer"]
            self.playback.observer = self.echo
            if hasattr(old_wake, "close"):   # a remote detector's connection thread: joined off the owner
                threading.Thread(target=old_wake.close, name="wake-close", daemon=True).start()
            del old_wake
            threading.Thread(target=give_memory_back, name="malloc-trim", daemon=True).start()
        elif parts.get("retune"):
            from .vad import Endpointer

            retune(self.wake, settings.wake)
            if not settings.wake.barge_in:
                self.echo = None
            elif "echo" in parts:
                self.echo = parts["echo"]
            elif self.echo is not None:
                self.echo.threshold, self.echo.window_s = settings.wake.echo_threshold, settings.wake.echo_window_s
                retune(self.echo.detector, settings.wake)
            self.playback.observer = self.echo
            self.endpointer = Endpointer(parts.get("vad", self.endpointer.vad), settings.vad,
                                         turn_model=parts.get("turn_model", self.endpointer.turn_model))
        if "responder" in parts:
            self.responder = parts["responder"]
        if settings.hotkey != old.hotkey:
            old_hotkey, self.hotkey = self.hotkey, None
            if old_hotkey:
                threading.Thread(target=old_hotkey.stop, name="hotkey-stop", daemon=True).start()
            self._start_hotkey()
        self.earcons = Earcons(settings.earcons)
        if (settings.tts, settings.stt.language) != (old.tts, old.stt.language):
            old_voices, self.language_voices = self.language_voices, LanguageVoices(settings)
            threading.Thread(target=old_voices.close, name="voices-close", daemon=True).start()
        self.voices = open_store(settings)
        logging.getLogger().setLevel(settings.log.level)
        if restart:
            log.warning("config reloaded; changes to [%s] apply after a restart (systemctl restart voiced)",
                        "], [".join(restart))
        else:
            log.info("config reloaded")

    # -- health: from the owner's snapshot only ------------------------------------------
    def snapshot(self) -> Snapshot:
        return self.owner.snapshot

    def alive(self) -> tuple[bool, str]:
        """What the systemd watchdog and /healthz ask: is the core stepping, is no stage stuck?"""
        w = self.settings.watchdog
        stage_deadline = max(w.stt_timeout_s, w.tts_chunk_timeout_s, self.settings.responder.timeout_s) * 2
        return liveness(self.owner.snapshot, time.monotonic(), w.loop_deadline_s, stage_deadline,
                        w.hung_stages_to_restart)

    def ready(self) -> tuple[bool, str]:
        return readiness(self.owner.snapshot)

    def status_line(self, snap: Snapshot) -> str:
        what = {S.IDLE: "listening for " + "/".join(self.settings.wake.models)}.get(snap.state, snap.state.value)
        parts = [what]
        if snap.mic.started and not snap.mic.ok:
            parts.append("MIC DOWN: " + snap.mic.detail)
        for role in ("stt", "tts"):
            engine = getattr(self, role)
            if engine is not None and engine.info is not None:   # live info: changes after a GPU fault
                parts.append(f"{role.upper()} {engine.info.name} on {engine.info.device}"
                             + (" (GPU fault: on CPU)" if engine.state["degraded"] else ""))
        return ", ".join(parts)

    def turn_ended(self, turn) -> None:
        """On the observers' thread: count, log and announce a finished turn."""
        self.stats.add(turn)
        log.info("%s", describe(turn))
        self.events.publish("turn", **turn_json(turn))

    # -- the voice ---------------------------------------------------------------------
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

    def prepare_request(self, pcm: np.ndarray) -> tuple[np.ndarray | None, str]:
        return prepare_request(self.settings.audio, pcm)

    def transcribe_request(self, pcm: np.ndarray, expect: str = "") -> Transcript | None:
        """Quality check + STT (None if the audio is not worth transcribing). The engines take
        one call at a time, so an early transcription never runs beside the turn's own.
        `expect`: the phrases this request is likely to be, as a Whisper prompt."""
        audio, _why = self.prepare_request(pcm)
        if audio is None:
            return None
        return self.stt.transcribe(audio, expect)

    # -- entry points for the HTTP API, CLI and hotkey: they post, the owner decides -------
    def _ask(self, msg) -> dict:
        self.owner.post(msg)
        return msg.box.wait(ANSWER_S)

    def begin_listening(self, trigger: str = "api") -> bool:
        """Start a listening turn now, as if the wake word had been heard; False if busy."""
        return bool(self._ask(m.Trigger(trigger)).get("accepted"))

    def say(self, text: str, style: VoiceStyle | None = None) -> bool:
        """Speak text through the speaker (API/CLI), in `style`; False if busy."""
        return bool(self._ask(m.Say(text, style)).get("accepted"))

    def handle_utterance(self, audio: np.ndarray, trigger: str = "api", style: VoiceStyle | None = None) -> dict | None:
        """A whole recorded request (float32, 16 kHz mono), e.g. from the browser: the reply
        comes back as audio instead of being played. None if the daemon is busy; an engine
        failure is raised."""
        msg = m.Utterance(audio, trigger, style)
        self.owner.post(msg)
        w = self.settings.watchdog
        result = msg.box.wait(w.stt_timeout_s + self.settings.responder.timeout_s + w.tts_chunk_timeout_s + 30)
        if "refused" in result:
            return None
        if isinstance(result.get("error"), BaseException):
            raise result["error"]
        return result

    def cancel_turn(self, reason: str) -> None:
        self.owner.post(m.CancelTurn(reason))

    def _start_hotkey(self) -> None:
        if not self.settings.hotkey.enabled:
            return
        try:
            from .triggers.hotkey import HotkeyReader
        except ImportError:
            log.error("hotkey.enabled, but the evdev package is not installed (pip install evdev); hotkey off")
            return

        def on_key(ev) -> None:   # the hotkey thread: post only
            self.owner.post(m.Key(ev.pressed, getattr(ev, "held_s", 0.0)))
        self.hotkey = HotkeyReader.from_settings(self.settings.hotkey, on_key, on_key).start()

    def status(self) -> dict:
        """Everything the status page and `voiced status` show, as plain JSON types."""
        return status_report(self)
