"""Turns whose brain is Home Assistant (homeassistant/satellite.py), on the owner's thread.

A wake word while Home Assistant is connected starts an Assist run instead of the local STT
and responder: the request streams to it until its VAD ends the speech, its pipeline events
move the turn through transcribing and thinking, and the reply it names (a URL) is fetched and
played by a turn worker. Announcements and finished timers are turns that only speak. The
owner stays the only writer of the turn state; this module is its Home Assistant half.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..pipeline import PipelineState as S

log = logging.getLogger("voiced.app")

# aioesphomeapi's VoiceAssistantEventType values (the wire numbers), and -1: Home Assistant left.
GONE, ERROR, RUN_START, RUN_END, STT_START, STT_END = -1, 0, 1, 2, 3, 4
INTENT_START, INTENT_END, TTS_START, TTS_END, STT_VAD_START, STT_VAD_END = 5, 6, 7, 8, 11, 12
TTS_AUDIO = 1001      # not on the wire: the reply as audio (Wyoming), data {"audio", "rate"}
TIMER_FINISHED = 3    # VoiceAssistantTimerEventType


@dataclass
class AssistRun:
    turn: int
    deadline: float                 # Home Assistant never answered: give up then
    streaming: bool = True
    samples: int = 0                # request audio sent so far
    continue_conversation: bool = False
    ended: bool = False


class Assist:
    def __init__(self, owner):
        self.owner = owner
        self.d = owner.d
        self.run: AssistRun | None = None
        self.timer_pending = False

    @property
    def satellite(self):
        return getattr(self.d, "satellite", None)

    # -- starting and streaming ---------------------------------------------------------------
    def start(self, turn_id: int, trigger: str) -> bool:
        """The owner claimed a listening turn: give it to Home Assistant if connected."""
        sat = self.satellite
        if sat is None or not sat.available:
            return False
        wake = trigger.split(":", 1)[1].replace("_", " ") if trigger.startswith("wake:") else None
        w, v = self.d.settings.watchdog, self.d.settings.vad
        self.run = AssistRun(turn_id, time.monotonic() + v.max_s + w.stt_timeout_s + self.d.settings.responder.timeout_s + 10)
        if not sat.start_run(wake):
            self.run = None
            return False
        log.info("turn %d goes to Home Assistant's Assist pipeline", turn_id)
        return True

    def frame(self, pcm) -> None:
        run = self.run
        if run is None or not run.streaming:
            return
        self.satellite.audio(pcm)
        run.samples += len(pcm)
        if run.samples >= self.d.settings.vad.max_s * 16_000:
            log.info("request reached [vad] max_s: the stream to Home Assistant ends")
            self._stop_stream(tell=True)

    def _stop_stream(self, tell: bool) -> None:
        if self.run is not None and self.run.streaming:
            self.run.streaming = False
            self.satellite.stop_audio(tell=tell)

    def release(self) -> None:
        """The hotkey ended the request: the stream to Home Assistant ends too."""
        self.owner.listener.ptt = None
        self._stop_stream(tell=True)

    def ended(self, turn_id: int | None) -> None:
        """The owner closed the turn (answered, cancelled, stopped)."""
        if self.run is not None and (turn_id is None or self.run.turn == turn_id):
            self._stop_stream(tell=True)
            self.run = None

    # -- Home Assistant's events ----------------------------------------------------------------
    def event(self, kind: int, data: dict) -> None:
        run, owner = self.run, self.owner
        turn = owner.pipeline.current
        if kind == TTS_AUDIO and (run is None or turn is None or turn.id != run.turn):
            self.announce(((data["audio"], data["rate"]),), "", False, True)   # audio outside a run
            return
        if run is None or turn is None or turn.id != run.turn:
            return    # late events of a run that already ended
        state = owner.pipeline.state
        if kind in (STT_VAD_END, STT_END):
            self._stop_stream(tell=False)
            if state == S.LISTENING:
                owner.pipeline.mark("end_of_speech")
                owner._to(S.TRANSCRIBING)
            if kind == STT_END:
                text = data.get("text", "")
                owner.pipeline.mark("transcript", transcript=text)
                log.info("Home Assistant heard %r", text)
                if owner.pipeline.state == S.TRANSCRIBING:
                    owner._to(S.THINKING)
        elif kind == INTENT_END:
            run.continue_conversation = data.get("continue_conversation") == "1"
        elif kind == TTS_START:
            owner.pipeline.mark("reply", reply=data.get("tts_input", ""))
        elif kind in (TTS_END, TTS_AUDIO) and owner.job is None:
            media = data.get("url") or ((data["audio"], data["rate"]) if "audio" in data else None)
            if media is None:
                return
            self._stop_stream(tell=False)
            if owner.pipeline.state == S.LISTENING:
                owner._to(S.TRANSCRIBING)
            if owner.pipeline.state == S.TRANSCRIBING:
                owner._to(S.THINKING)
            owner._to(S.SPEAKING)
            owner._start_job(self.owner.worker.play_media, (media,), True, run.continue_conversation)
        elif kind == RUN_END:
            run.ended = True
            if owner.job is None:
                owner.end_turn("answered by Home Assistant" if turn.transcript else "no speech")
        elif kind in (ERROR, GONE):
            why = data.get("message") or data.get("code") or "error"
            log.warning("Home Assistant: %s (%s)", why, data.get("code", "?"))
            if owner.job is None:
                owner.end_turn(f"error: {why}", failed=kind == ERROR)

    def expire(self, now: float) -> None:
        run = self.run
        if run is not None and now >= run.deadline and self.owner.job is None:
            log.warning("Home Assistant did not finish the run in time; ending the turn")
            self.owner.end_turn("error: Home Assistant did not answer", failed=True)

    # -- announcements and timers ---------------------------------------------------------------
    def announce(self, urls: tuple, text: str, start_conversation: bool, reply: bool) -> None:
        owner = self.owner
        if owner.pipeline.state != S.IDLE:
            log.info("announcement %r not played: voiced is %s", text or urls[-1], owner.pipeline.state.value)
            if reply and self.satellite is not None:
                self.satellite.played(False)
            return
        owner.pipeline.claim("announce", S.SPEAKING, mark="reply")
        owner.pipeline.mark("", reply=text)
        owner._start_job(owner.worker.play_media, tuple(urls), reply, start_conversation)

    def timer(self, event: int) -> None:
        if event != TIMER_FINISHED:
            return
        if self.owner.pipeline.state == S.IDLE:
            self.ring()
        else:
            self.timer_pending = True   # rings once the current turn is over

    def ring(self) -> None:
        owner = self.owner
        self.timer_pending = False
        owner.pipeline.claim("timer", S.SPEAKING, mark="reply")
        log.info("a timer finished: ringing until the wake word or the hotkey stops it")
        owner._start_job(owner.worker.ring, self.d.settings.homeassistant.timer_ring_s)
