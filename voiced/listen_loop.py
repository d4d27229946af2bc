"""The listen loop: the fast path that sees every 80 ms microphone frame.

Wake word (with barge-in while voiced speaks), end-pointing of the request, and the hotkey,
all on one thread so they never race each other. Nothing here blocks: the slow stages run
on the turn worker (app.py). Daemon mixes this in; the state it uses is set up there.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial

import numpy as np

from .early_stt import EarlyTranscript
from .pipeline import PipelineState as S

log = logging.getLogger("voiced.app")
RATE = 16_000
# openWakeWord fires ~0.1 s before the wake phrase ends; skip that tail so the end of
# "jarvis" does not count as the start of the request.
WAKE_TAIL_S = 0.25
# A barge-in waits for the cut reply's turn to wind down; past this, the request is dropped.
BARGE_IN_WAIT_S = 3.0


class ListenLoop:
    def run(self) -> None:
        while not self._stop.is_set():
            self._drain_hotkey()
            frame = self.capture.read(timeout=0.1 if self._hotkey_events else 0.5)
            if frame is None:
                continue
            self.last_frame_at = time.monotonic()
            try:
                self._on_frame(frame)
            except Exception:  # a bug on one frame must not leave the daemon deaf
                log.exception("listen loop: error on a frame; going on")

    def reset_wake(self) -> None:
        """Any thread: forget the wake detector's buffered audio. Done by the listen loop before
        its next frame, as the detector is not thread-safe (the loop scores while voiced speaks)."""
        self._wake_reset = True

    def _on_frame(self, frame: np.ndarray) -> None:
        if self._wake_reset:
            self._wake_reset = False
            self.wake.reset()
        state = self.pipeline.state
        if self._barge_frames is not None:
            self._after_barge_in(frame, state)
        elif state == S.IDLE:
            self._listen_for_wake(frame)
        elif state == S.SPEAKING and self.echo is not None:   # barge-in needs the echo guard
            self._listen_for_barge_in(frame)
        elif state == S.LISTENING:
            if self._in_follow_up() and self._wake_during_follow_up(frame):
                return
            with self._record_lock:
                self._record(frame)

    def _in_follow_up(self) -> bool:
        turn = self.pipeline.current
        return turn is not None and turn.trigger == "follow-up"

    def _wake_during_follow_up(self, frame: np.ndarray) -> bool:
        """The wake word said inside a follow-up window starts a normal turn (so the
        wake word itself does not end up as the follow-up's transcript)."""
        detection = self._detect_wake(frame)
        if detection is None:
            return False
        with self._record_lock:
            self.pipeline.end_turn("follow-up window closed")
            self.pipeline.to(S.IDLE)
        log.info("wake word %s (score %.2f) during the follow-up window", detection.model, detection.score)
        if self.begin_listening(f"wake:{detection.model}"):
            self._cue(self.earcons.listening())
        return True

    def _wake_gate_open(self) -> bool:
        w = self.settings.wake
        if self.echo is not None or not w.mute_during_playback:   # the echo guard filters instead
            return True
        quiet_for = time.monotonic() - self.playback.last_end
        return not self.playback.playing and quiet_for >= w.playback_tail_s

    def _detect_wake(self, frame: np.ndarray):
        """The wake detector on one frame, minus detections that are our own reply's echo."""
        detection = self.wake.process(frame)
        if detection is not None and self.echo is not None and self.echo.is_echo():
            log.info("wake word %s (score %.2f) ignored: the reply itself said it (echo score %.2f)",
                     detection.model, detection.score, self.echo.peak)
            self.stats.counts["echo_wakes_ignored"] += 1
            return None
        return detection

    def _listen_for_wake(self, frame: np.ndarray) -> None:
        if not self._wake_gate_open():
            self._gate_was_closed = True
            return
        if self._gate_was_closed:
            # Whatever the detector buffered before/while we spoke must not fire now.
            self.wake.reset()
            self._gate_was_closed = False
        detection = self._detect_wake(frame)
        if detection is not None:
            log.info("wake word %s (score %.2f)", detection.model, detection.score)
            if self.begin_listening(f"wake:{detection.model}"):
                self._cue(self.earcons.listening())

    # -- barge-in: the wake word while voiced speaks -----------------------
    def _listen_for_barge_in(self, frame: np.ndarray) -> None:
        turn = self.pipeline.current
        if turn is not None and turn.id != self._barge_turn:
            # A fresh start for each reply: the request's wake word left a refractory period
            # (in audio time) that would otherwise swallow the first seconds of a barge-in.
            self._barge_turn = turn.id
            self.wake.reset()
        detection = self._detect_wake(frame)
        if detection is None:
            return
        log.info("barge-in: wake word %s (score %.2f) while speaking; cutting the reply",
                 detection.model, detection.score)
        self._barge_at = time.monotonic()
        self._barge_trigger = f"wake:{detection.model}"
        self._barge_frames = []   # the request may start at once: keep the audio until idle
        self.playback.stop()

    def _after_barge_in(self, frame: np.ndarray, state: S) -> None:
        frames = self._barge_frames
        frames.append(frame)
        if state != S.IDLE:
            if time.monotonic() - self._barge_at > BARGE_IN_WAIT_S:
                log.warning("barge-in: the reply's turn did not end within %.0f s; request dropped", BARGE_IN_WAIT_S)
                self._barge_frames = None
            return
        self._barge_frames = None
        if not self.begin_listening(self._barge_trigger):
            return
        self._cue(self.earcons.listening())
        with self._record_lock:
            for f in frames:            # as if they had come in while listening (wake tail skipped)
                if self.pipeline.state == S.LISTENING:
                    self._record(f)

    def begin_listening(self, trigger: str, skip_s: float = WAKE_TAIL_S, wait_s: float | None = None) -> bool:
        """Start recording a request (wake word, API or CLI trigger); False if busy.
        wait_s overrides how long to wait for speech (follow-ups)."""
        # Under the lock the listen loop cannot feed the endpointer between the claim and
        # start() (the API, a follow-up and the hotkey call this from other threads).
        with self._record_lock:
            if self.pipeline.claim(trigger, S.LISTENING) is None:
                return False
            self._early = None   # one started in an earlier, abandoned request is not this one's
            self._skip_frames = round(skip_s * 1000 / self.settings.audio.chunk_ms)
            self.endpointer.start(no_speech_timeout_s=wait_s)
            return True
    def _record(self, frame: np.ndarray) -> None:
        if self._ptt is not None:   # push-to-talk: the key decides the end, not the VAD
            self._ptt.append(frame)
            if len(self._ptt) * self.settings.audio.chunk_ms / 1000 >= self.settings.vad.max_s:
                frames, self._ptt = self._ptt, None
                self._finish_recording(np.concatenate(frames))
            return
        if self._skip_frames > 0:
            self._skip_frames -= 1
            return
        result = self.endpointer.feed(frame)
        if result is None:
            self._maybe_transcribe_early()
            return
        if result.kind == "no_speech":
            self.wake.reset()
            follow_up = self._in_follow_up()
            self.pipeline.end_turn("follow-up window closed" if follow_up else "no speech")
            self.pipeline.to(S.IDLE)
            if not follow_up:   # a wake with nothing after it: a false wake, counted in stats
                self._cue(self.earcons.failed())
            return
        # End of speech happened `hangover` before the VAD could be sure of it.
        self._finish_recording(result.audio, result.samples_since_speech_end / RATE, result.event.speech_end_s)

    def _maybe_transcribe_early(self) -> None:
        """At a pause, start Whisper on the speech so far (see early_stt.py); one job at a time."""
        early_s, ep = self.settings.vad.early_transcribe_s, self.endpointer
        if early_s <= 0 or early_s >= self.settings.vad.silence_s or not ep.speech_heard or ep.silence_s < early_s:
            return
        if self._early is not None and (self._early.key == ep.speech_end_s or self._early.running):
            return
        self._early = EarlyTranscript(ep.speech_end_s, partial(self.transcribe_request, ep.audio()))

    def _finish_recording(self, pcm: np.ndarray, lag_s: float = 0.0, speech_end_s: float | None = None) -> None:
        early, self._early = self._early, None
        if early is not None and (speech_end_s is None or early.key != speech_end_s):
            early = None                  # the speaker went on after that pause: stale
        if early is not None:
            early.decided_at = time.monotonic()
        self.pipeline.mark("end_of_speech", at=time.monotonic() - lag_s)
        self.pipeline.to(S.TRANSCRIBING)
        self._worker = threading.Thread(target=self._turn, args=(pcm, early), name="turn", daemon=True)
        self._worker.start()

    # -- hotkey ------------------------------------------------------------
    def _start_hotkey(self) -> None:
        if not self.settings.hotkey.enabled:
            return
        try:
            from .triggers.hotkey import HotkeyReader
        except ImportError:
            log.error("hotkey.enabled, but the evdev package is not installed (pip install evdev); hotkey off")
            return
        self.hotkey = HotkeyReader.from_settings(self.settings.hotkey, self._on_key_event, self._on_key_event).start()

    def _on_key_event(self, ev) -> None:
        """On the hotkey thread: a press while voiced speaks cuts the reply right away (setting
        an event is thread-safe; waiting for the listen loop's next frame costs up to 80 ms).
        Everything else is handled on the listen loop."""
        if ev.pressed and self.pipeline.state == S.SPEAKING:
            self.playback.stop()
        self._hotkey_events.append(ev)

    def _drain_hotkey(self) -> None:
        """Hotkey events are handled here, on the listen loop, so they never race _record()."""
        while self._hotkey_events:
            ev = self._hotkey_events[0]
            if ev.pressed and self.pipeline.state == S.SPEAKING:
                return   # barge-in: _on_key_event cut the reply; the press is handled once idle
            if self.pipeline.state not in (S.IDLE, S.LISTENING) and ev.pressed:
                return                 # busy transcribing/thinking: keep the press for a moment
            self._hotkey_events.popleft()
            self._on_hotkey(ev)

    def _on_hotkey(self, ev) -> None:
        toggle = self.settings.hotkey.mode == "toggle"
        if ev.pressed and self.pipeline.state == S.LISTENING and self._in_follow_up():
            self.pipeline.end_turn("follow-up window closed")   # the key starts a fresh turn instead
            self.pipeline.to(S.IDLE)
        if ev.pressed and toggle and self.pipeline.state == S.LISTENING:
            self._finish_recording(self.endpointer.audio())   # toggle: the second press ends it
        elif ev.pressed:
            if self.begin_listening("hotkey", skip_s=0):
                self._ptt = None if toggle else []
                self._cue(self.earcons.listening())
        elif self._ptt is not None:                           # push-to-talk released
            frames, self._ptt = self._ptt, None
            log.info("hotkey released after %.1f s", ev.held_s)
            if self.pipeline.state == S.LISTENING:
                self._finish_recording(np.concatenate(frames) if frames else np.zeros(0, np.int16))

    def _cue(self, chunk) -> None:
        """An earcon, off the listen loop (playback blocks); never over a reply."""
        if chunk is not None and not self.playback.playing:
            threading.Thread(target=self.playback.play, args=([chunk],), kwargs={"level": False},
                             name="earcon", daemon=True).start()
