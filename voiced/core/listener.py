"""The listening half of the owner: what one 80 ms microphone frame means in each state.

Wake word (and barge-in by it while voiced speaks), end-pointing of a request, push-to-talk
frames, the pre-roll and speculation. Runs on the owner's thread only, so nothing here races;
it never waits on a model except the end-of-turn model's ~25 ms at a pause (vad.py: it is
the decision). The answer prepared at a pause runs on its own thread (speculation.py). It
decides nothing about the turn itself: it asks the owner to begin or finish one.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from ..audio.preroll import PreRoll
from ..engines.vocabulary import phrases_prompt
from . import messages as m
from .conversation import asks_to_stop
from .speculation import Speculation

log = logging.getLogger("voiced.app")
RATE = 16_000
# openWakeWord fires ~0.1 s before the wake phrase ends; skip that tail so the end of
# "jarvis" does not count as the start of the request.
WAKE_TAIL_S = 0.25


class Listener:
    def __init__(self, owner):
        self.owner = owner
        self.d = owner.d
        self.preroll = PreRoll(self.d.settings.vad.preroll_s)
        self._skip_frames = 0
        self._gate_was_closed = False
        self._barge_turn = -1
        self.ptt: list[np.ndarray] | None = None   # push-to-talk: frames recorded while held
        self.early: Speculation | None = None      # the answer started at a pause
        self._model_error_logged = False
        self._stop_turn = -1     # the ringing timer whose "stop" the end-pointer listens for

    def reloaded(self) -> None:
        if self.preroll.max_samples != round(self.d.settings.vad.preroll_s * RATE):
            self.preroll = PreRoll(self.d.settings.vad.preroll_s)

    # -- starting a request ----------------------------------------------------
    def begin(self, trigger: str, skip_s: float, wait_s: float | None, use_preroll: bool) -> None:
        """The owner claimed a listening turn: start the end-pointer (with the pre-roll for
        a key or API trigger, so a word spoken with the press is not clipped)."""
        self.discard()
        self.ptt = None
        self._skip_frames = round(skip_s * 1000 / self.d.settings.audio.chunk_ms)
        pre = self.preroll.audio() if use_preroll else None
        self.d.endpointer.start(pre, no_speech_timeout_s=wait_s)

    def start_push_to_talk(self) -> None:
        pre = self.preroll.audio()
        self.ptt = [pre] if len(pre) else []

    # -- per state --------------------------------------------------------------
    def idle(self, frame: np.ndarray) -> None:
        if not self._wake_gate_open():
            self._gate_was_closed = True
            return
        if self._gate_was_closed:
            # Whatever the detector buffered before/while we spoke must not fire now.
            self.d.wake.reset()
            self._gate_was_closed = False
        detection = self._detect_wake(frame)
        if detection is not None:
            log.info("wake word %s (score %.2f)", detection.model, detection.score)
            self.owner.begin_listening(f"wake:{detection.model}", cue=True)

    def speaking(self, frame: np.ndarray) -> None:
        """Barge-in: the wake word while voiced speaks cuts the reply (needs the echo guard);
        a ringing timer also stops at a spoken "stop"."""
        turn = self.owner.pipeline.current
        if turn is not None and turn.trigger == "timer":
            self._hear_stop(frame, turn.id)
        if self.d.echo is None:
            return
        if turn is not None and turn.id != self._barge_turn:
            # A fresh start for each reply: the request's wake word left a refractory period
            # (in audio time) that would otherwise swallow the first seconds of a barge-in.
            self._barge_turn = turn.id
            self.d.wake.reset()
        detection = self._detect_wake(frame)
        if detection is None:
            return
        log.info("barge-in: wake word %s (score %.2f) while speaking; cutting the reply",
                 detection.model, detection.score)
        self.owner.barge_in(f"wake:{detection.model}")

    def listening(self, frame: np.ndarray) -> None:
        if self.owner.assist.run is not None:   # Home Assistant's VAD ends this request
            self.owner.assist.frame(frame)
            return
        if self.owner.in_follow_up():
            detection = self._detect_wake(frame)
            if detection is not None:   # the wake word inside a follow-up window starts a normal turn
                log.info("wake word %s (score %.2f) during the follow-up window", detection.model, detection.score)
                self.owner.end_turn("follow-up window closed")
                self.owner.begin_listening(f"wake:{detection.model}", cue=True)
                return
        self._record(frame)

    def _hear_stop(self, frame: np.ndarray, turn_id: int) -> None:
        """While a timer rings: each short utterance is transcribed off this thread; a cancel
        phrase ("stop") ends the ringing. The ring itself is a tone, which the VAD ignores."""
        ep = self.d.endpointer
        if self._stop_turn != turn_id or not ep.active:
            self._stop_turn = turn_id
            ep.start(no_speech_timeout_s=60.0)
        result = ep.feed(frame)
        if result is None:
            return
        self._stop_turn = -1   # start again at the next frame
        if result.kind.value != "end":
            return
        # Only the utterance (and a little before it): seconds of silence before a short "stop"
        # make Whisper's no-speech gate drop it.
        start = max(0, round(((result.event.speech_start_s or 0.0) + ep.preroll_s - 0.25) * RATE))
        audio, phrases, post = result.audio[start:], self.d.settings.conversation.cancel_phrases, self.owner.post

        def check():
            try:
                transcript = self.d.transcribe_request(audio, expect=phrases_prompt(phrases))
            except Exception as exc:  # noqa: BLE001 - the key and the wake word still stop it
                log.warning("could not listen for \"stop\" while the timer rings: %s", exc)
                return
            if transcript is not None and asks_to_stop(transcript.text, phrases):
                log.info("heard %r: the timer stops ringing", transcript.text)
                post(m.CancelTurn("stopped by voice", turn=turn_id))
            elif transcript is not None:
                log.info("while the timer rings, heard %r (not a stop phrase)%s", transcript.text,
                         f": {transcript.rejected}" if transcript.rejected else "")
        threading.Thread(target=check, name="stop-word", daemon=True).start()

    # -- helpers ------------------------------------------------------------------
    def _wake_gate_open(self) -> bool:
        w = self.d.settings.wake
        if self.d.echo is not None or not w.mute_during_playback:   # the echo guard filters instead
            return True
        quiet_for = time.monotonic() - self.d.playback.last_end
        return not self.d.speaker.busy and quiet_for >= w.playback_tail_s

    def _detect_wake(self, frame: np.ndarray):
        """The wake detector on one frame, minus detections that are our own reply's echo."""
        detection = self.d.wake.process(frame)
        if self.d.meter.wanted:   # a status page shows the level and scores (costs nothing otherwise)
            self.d.meter.frame(frame, self.d.wake)
        echo = self.d.echo
        if detection is not None and echo is not None and echo.is_echo():
            log.info("wake word %s (score %.2f) ignored: the reply itself said it (echo score %.2f)",
                     detection.model, detection.score, echo.peak)
            self.d.stats.count("echo_wakes_ignored")
            return None
        return detection

    def _record(self, frame: np.ndarray) -> None:
        if self.d.meter.wanted:
            self.d.meter.frame(frame)
        if self.ptt is not None:   # push-to-talk: the key decides the end, not the VAD
            self.ptt.append(frame)
            if sum(len(f) for f in self.ptt) / RATE >= self.d.settings.vad.max_s:
                self.finish_push_to_talk()
            return
        if self._skip_frames > 0:
            self._skip_frames -= 1
            return
        ep = self.d.endpointer
        result = ep.feed(frame)
        if ep.model_error and not self._model_error_logged:
            self._model_error_logged = True
            log.error("end-of-turn model failed (%s): turns end after [vad] silence_s = %.1f s of silence "
                      "until the config is reloaded or voiced restarts", ep.model_error, self.d.settings.vad.silence_s)
        if result is None:
            self._maybe_speculate()
            return
        if result.kind == "no_speech":
            follow_up = self.owner.in_follow_up()
            self.owner.end_turn("follow-up window closed" if follow_up else "no speech",
                                failed=not follow_up)   # a wake with nothing after it: a false wake
            return
        self._log_end_of_turn(result.event)
        # End of speech happened `hangover` before the VAD could be sure of it.
        self._finish(result.audio, result.samples_since_speech_end / RATE, result.event.speech_end_s)

    def finish_push_to_talk(self) -> None:
        frames, self.ptt = self.ptt or [], None
        self._finish(np.concatenate(frames) if frames else np.zeros(0, np.int16))

    def finish_now(self) -> None:
        """Toggle hotkey, second press: the request is what was recorded so far."""
        self._finish(self.d.endpointer.audio())

    def _maybe_speculate(self) -> None:
        """At a pause, start the answer on the speech so far (speculation.py); one at a time."""
        v, ep = self.d.settings.vad, self.d.endpointer
        if v.early_transcribe_s <= 0 or not ep.speech_heard:
            return
        start_s = v.pause_s if ep.semantic else v.early_transcribe_s
        if (not ep.semantic and start_s >= v.silence_s) or ep.silence_s < start_s:
            return
        if self.early is not None:
            if self.early.key == ep.speech_end_s:
                return
            if self.early.running:          # the speaker went on: stop it; start anew once it is done
                self.discard()
                return
            self.discard()
        answer = v.speculate and getattr(self.d.responder, "side_effect_free", False)
        self.early = Speculation(ep.speech_end_s, ep.audio(), self.d, answer)
        self.d.stats.count("speculations_started")

    def discard(self) -> None:
        """The answer prepared at a pause is not wanted (more speech came, the turn ended)."""
        early, self.early = self.early, None
        if early is not None and not early.cancel.is_set():
            early.cancel.set()
            self.d.stats.count("speculations_discarded")

    def _log_end_of_turn(self, event) -> None:
        ep = self.d.endpointer
        if event.by:
            self.d.stats.count(f"end_of_turn_{event.by}")
        for j in ep.judgements[:-1] if event.by == "model" else ep.judgements:
            log.info("pause at %.2f s: sounds unfinished (p=%.2f, %.0f ms), listening on", j.speech_end_s,
                     j.probability, j.ms)
        if event.by == "model":
            j = ep.judgements[-1]
            log.info("end of turn: sounds finished (p=%.2f, %.0f ms) after a %.2f s pause", j.probability, j.ms,
                     event.hangover_s)
        elif event.kind.value == "end":
            log.info("end of turn: %.2f s of silence", event.hangover_s)

    def _finish(self, pcm: np.ndarray, lag_s: float = 0.0, speech_end_s: float | None = None) -> None:
        early = self.early
        if early is not None and (speech_end_s is None or early.key != speech_end_s):
            self.discard()                # the speaker went on after that pause: stale
            early = None
        self.early = None
        if early is not None:
            early.decided_at = time.monotonic()
        self.owner.recorded(pcm, lag_s, early)
