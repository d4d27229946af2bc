"""The turn owner: one thread, one queue, one table. The only writer of the turn state.

Every input arrives as a message (messages.py). The owner takes them in order, looks up
`(state, message type)` in TABLE (else DEFAULT) and runs that one step; after each step it
publishes a frozen Snapshot (health.py) for everyone who reads the state. Slow work runs in
turn workers (turns.py) that post their results back; notifications go to the observers'
thread (observers.py), never run here. A step that raises is logged and the loop goes on.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import replace

from ..pipeline import InvalidTransition, Pipeline
from ..pipeline import PipelineState as S
from .assist import Assist
from .health import MicFacts, Snapshot
from .listener import WAKE_TAIL_S, Listener
from .messages import (CancelTurn, Finished, HaAnnounce, HaEvent, HaTimer, Key, Loaded, LoadFailed, MicFrame,
                       Progress, Reloaded, ReloadFailed, ReloadRequested, Say, Stop, Trigger, Utterance)
from .turns import TurnJob, TurnWorker

log = logging.getLogger("voiced.app")
TICK_S = 0.25            # the owner steps at least this often: deadlines, snapshot, liveness
MAX_QUEUED_FRAMES = 64   # ~5 s of audio; past it the owner is stuck and new frames are dropped

# What a message means in each state. Anything not listed falls back to DEFAULT.
TABLE: dict[tuple[S, type], str] = {
    (S.IDLE, MicFrame): "hear_wake_word",
    (S.LISTENING, MicFrame): "record",
    (S.SPEAKING, MicFrame): "hear_barge_in",
    (S.IDLE, Trigger): "start_listening",
    (S.IDLE, Say): "start_say",
    (S.IDLE, Utterance): "start_utterance",
    (S.STARTING, Loaded): "go_idle",
    (S.STARTING, LoadFailed): "give_up",
}
DEFAULT: dict[type, str] = {
    MicFrame: "ignore",               # transcribing/thinking: only the pre-roll keeps it
    Trigger: "refuse", Say: "refuse", Utterance: "refuse",
    Key: "key",
    CancelTurn: "cancel",
    ReloadRequested: "load_new_settings", Reloaded: "reload", ReloadFailed: "reload_failed",
    Stop: "stop",
    Loaded: "ignore", LoadFailed: "ignore",
    Progress: "advance", Finished: "finish",
    HaEvent: "ha_event", HaAnnounce: "ha_announce", HaTimer: "ha_timer",
}


class TurnOwner:
    def __init__(self, daemon):
        self.d = daemon
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()   # put() is reentrant: signal handlers may post
        self.pipeline = Pipeline()
        self.pipeline.subscribe(self._on_state)
        self.pipeline.on_turn_end(self._on_turn_end)
        self.listener = Listener(self)
        self.assist = Assist(self)     # turns answered by Home Assistant
        self.worker = TurnWorker(daemon)
        self.job: TurnJob | None = None
        self.hung_stages = 0
        self.pending_reload: Reloaded | None = None
        self.pending_keys: deque[Key] = deque()
        self.follow_up_at: float | None = None
        self.stop_reason: str | None = None
        self.load_error: BaseException | None = None
        self.state_since = time.monotonic()
        self.snapshot = Snapshot()
        self.thread: threading.Thread | None = None
        self._frames_lock = threading.Lock()
        self._frames_queued = 0
        self._dropped = 0
        self._last_status = ""

    # -- any thread ------------------------------------------------------------------
    def post(self, msg) -> None:
        self.inbox.put(msg)

    def post_frame(self, pcm) -> None:
        """The capture's sink. A stuck owner must not make the queue grow without bound."""
        with self._frames_lock:
            if self._frames_queued >= MAX_QUEUED_FRAMES:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 100 == 0:
                    log.warning("the core is behind: dropped %d microphone frames", self._dropped)
                return
            self._frames_queued += 1
        self.inbox.put(MicFrame(pcm, time.monotonic()))

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        self.thread = threading.current_thread()
        self._publish()
        while self.stop_reason is None:
            try:
                msg = self.inbox.get(timeout=TICK_S)
            except queue.Empty:
                msg = None
            if msg is not None:
                self.step(msg)
            self._expire(time.monotonic())
            self._publish()
        self._refuse_the_rest()

    def step(self, msg) -> None:
        if isinstance(msg, MicFrame):
            with self._frames_lock:
                self._frames_queued -= 1
            self.listener.preroll.append(msg.pcm)
        state = self.pipeline.state
        name = TABLE.get((state, type(msg))) or DEFAULT[type(msg)]
        try:
            getattr(self, name)(msg)
        except Exception:  # noqa: BLE001 - a bug in one step must not leave the daemon deaf
            log.exception("core: %s in state %s failed; going on", type(msg).__name__, state.value)

    def _refuse_the_rest(self) -> None:
        """After stop: nobody waiting on a reply box may hang."""
        while True:
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(msg, (Trigger, Say, Utterance)):
                self.refuse(msg)

    # -- steps: microphone -------------------------------------------------------------
    def ignore(self, _msg) -> None:
        pass

    def hear_wake_word(self, msg: MicFrame) -> None:
        self.listener.idle(msg.pcm)

    def record(self, msg: MicFrame) -> None:
        self.listener.listening(msg.pcm)

    def hear_barge_in(self, msg: MicFrame) -> None:
        self.listener.speaking(msg.pcm)

    # -- steps: requests ---------------------------------------------------------------
    def refuse(self, msg) -> None:
        self._answer(msg.box, {"refused": self.pipeline.state.value})

    def start_listening(self, msg: Trigger) -> None:
        ok = self.begin_listening(msg.source, skip_s=0, use_preroll=True)
        self._answer(msg.box, {"accepted": ok, "state": self.pipeline.state.value})

    def start_say(self, msg: Say) -> None:
        self.pipeline.claim("say", S.SPEAKING, mark="reply")
        self.pipeline.mark("", reply=msg.text)
        self._start_job(self.worker.say, msg.text, msg.style)
        self._answer(msg.box, {"accepted": True, "state": self.pipeline.state.value})

    def start_utterance(self, msg: Utterance) -> None:
        self.pipeline.claim(msg.trigger, S.TRANSCRIBING, mark="end_of_speech")
        self._start_job(self.worker.utterance, msg.audio, msg.style, box=msg.box)

    def key(self, msg: Key) -> None:
        state = self.pipeline.state
        if state in (S.STARTING, S.STOPPING):
            return
        if self.pending_keys or (msg.pressed and state in (S.TRANSCRIBING, S.THINKING)):
            self.pending_keys.append(msg)   # busy: handled once idle, in order
            return
        toggle = self.d.settings.hotkey.mode == "toggle"
        if not msg.pressed:
            if self.listener.ptt is not None and state == S.LISTENING:
                log.info("hotkey released after %.1f s", msg.held_s)
                if self.assist.run is not None:
                    self.assist.release()
                else:
                    self.listener.finish_push_to_talk()
            return
        if state == S.SPEAKING:
            self.cancel_turn("interrupted")      # barge-in by the key: cut the reply now
        elif state == S.LISTENING and self.in_follow_up():
            self.end_turn("follow-up window closed")   # the key starts a fresh turn instead
        elif state == S.LISTENING and toggle:
            if self.assist.run is not None:
                self.assist.release()
            else:
                self.listener.finish_now()       # toggle: the second press ends the request
            return
        if self.begin_listening("hotkey", skip_s=0, cue=True, use_preroll=True) and not toggle:
            self.listener.start_push_to_talk()

    def cancel(self, msg: CancelTurn) -> None:
        turn = self.pipeline.current
        if turn is not None and msg.turn in (None, turn.id):
            self.cancel_turn(msg.reason)

    # -- steps: Home Assistant (core/assist.py) --------------------------------------------------
    def ha_event(self, msg: HaEvent) -> None:
        self.assist.event(msg.kind, msg.data)

    def ha_announce(self, msg: HaAnnounce) -> None:
        self.assist.announce(msg.urls, msg.text, msg.start_conversation, msg.reply)

    def ha_timer(self, msg: HaTimer) -> None:
        self.assist.timer(msg.event)

    # -- steps: workers ------------------------------------------------------------------
    def advance(self, msg: Progress) -> None:
        if msg.hung is not None:
            self.hung_stages = self.hung_stages + 1 if msg.hung else 0
        turn = self.pipeline.current
        if turn is None or turn.id != msg.turn:
            return   # a cancelled turn's worker, still winding down
        if msg.mark or msg.fields:
            self.pipeline.mark(msg.mark, **msg.fields)
        if msg.state is not None:
            self._to(msg.state)

    def finish(self, msg: Finished) -> None:
        turn = self.pipeline.current
        if turn is None or turn.id != msg.turn:
            return
        job, self.job = self.job, None
        ended = self._close_turn(msg.outcome)
        if job is not None and job.box is not None:
            self._answer(job.box, self._result(ended, msg.result))
        if msg.failed:
            self.d.speaker.cue(self.d.earcons.failed())
        if msg.follow_up and self.stop_reason is None:
            self.follow_up_at = time.monotonic() + self.d.settings.wake.playback_tail_s
        self._after_idle()

    # -- steps: life cycle ---------------------------------------------------------------
    def go_idle(self, _msg: Loaded) -> None:
        self._to(S.IDLE)
        log.info("listening for %s", ", ".join(self.d.settings.wake.models))
        self._publish()
        line = self.snapshot.status_line
        self.d.observers.notify(lambda: self.d.notifier.ready(line))
        self.d.on_ready()

    def give_up(self, msg: LoadFailed) -> None:
        self.load_error = msg.error
        self.stop_reason = "the models did not load"

    def stop(self, msg: Stop) -> None:
        log.info("%s: stopping", msg.reason)
        self.stop_reason = msg.reason
        self.follow_up_at = None
        if self.pipeline.current is not None:
            self.cancel_turn(f"stopped ({msg.reason})")
        self.d.speaker.stop()
        self._to(S.STOPPING)
        self.d.observers.notify(self.d.notifier.stopping)

    def load_new_settings(self, _msg: ReloadRequested) -> None:
        self.d.observers.notify(self.d.notifier.reloading)
        threading.Thread(target=self.d.prepare_reload, name="reload", daemon=True).start()

    def reload(self, msg: Reloaded) -> None:
        if self.pipeline.state == S.IDLE:
            self._apply_reload(msg)
            return
        log.info("config reload waits for the current turn (%s) to end", self.pipeline.state.value)
        self.pending_reload = msg

    def reload_failed(self, msg: ReloadFailed) -> None:
        log.error("SIGHUP: config not reloaded, keeping the running one: %s", msg.error)
        line = self.snapshot.status_line
        self.d.observers.notify(lambda: self.d.notifier.ready(line))

    # -- turn bookkeeping (owner thread only) ------------------------------------------------
    def begin_listening(self, trigger: str, skip_s: float = WAKE_TAIL_S, wait_s: float | None = None,
                        cue: bool = False, use_preroll: bool = False) -> bool:
        self.follow_up_at = None
        if self.pipeline.claim(trigger, S.LISTENING) is None:
            return False
        self.listener.begin(trigger, skip_s, wait_s, use_preroll)
        self.assist.start(self.pipeline.current.id, trigger)
        if cue:
            self.d.speaker.cue(self.d.earcons.listening())
        return True

    def recorded(self, pcm, lag_s: float, early) -> None:
        """The listener has the whole request: transcribe and answer it on a worker."""
        self.pipeline.mark("end_of_speech", at=time.monotonic() - lag_s)
        self._to(S.TRANSCRIBING)
        self._start_job(self.worker.spoken, pcm, early)

    def barge_in(self, trigger: str) -> None:
        self.cancel_turn("interrupted")
        self.begin_listening(trigger, cue=True)

    def end_turn(self, outcome: str, failed: bool = False) -> None:
        self._close_turn(outcome)
        if failed:
            self.d.speaker.cue(self.d.earcons.failed())
        self._after_idle()

    def cancel_turn(self, reason: str) -> None:
        """Stop the current turn's work (its worker's late messages are dropped) and end it."""
        job, self.job = self.job, None
        if job is not None:
            job.cancel.set()
            self.d.speaker.stop(job.turn)
        ended = self._close_turn(reason)
        if job is not None and job.box is not None:
            self._answer(job.box, self._result(ended, None))

    def in_follow_up(self) -> bool:
        turn = self.pipeline.current
        return self.pipeline.state == S.LISTENING and turn is not None and turn.trigger == "follow-up"

    def _start_job(self, target, *args, box=None) -> None:
        job = TurnJob(self.pipeline.current.id, self.post, box=box)
        job.thread = threading.Thread(target=target, args=(job, *args), name=f"turn-{job.turn}", daemon=True)
        self.job = job
        job.thread.start()

    def _close_turn(self, outcome: str):
        self.assist.ended(self.pipeline.current.id if self.pipeline.current else None)
        turn = self.pipeline.end_turn(outcome)
        if self.pipeline.state != S.STOPPING:
            self._to(S.IDLE)
        self.listener.ptt = None
        self.listener.discard()
        self.d.wake.reset()   # its buffer holds the request (or the reply's echo), not a wake word
        return turn

    def _after_idle(self) -> None:
        if self.pipeline.state != S.IDLE:
            return
        if self.pending_reload is not None:
            msg, self.pending_reload = self.pending_reload, None
            self._apply_reload(msg)
        while self.pending_keys and self.pipeline.state in (S.IDLE, S.LISTENING):
            self.key(self.pending_keys.popleft())
        if self.assist.timer_pending and self.pipeline.state == S.IDLE:
            self.assist.ring()

    def _apply_reload(self, msg: Reloaded) -> None:
        self.d.apply_settings(msg.settings, msg.parts)
        self.listener.reloaded()
        self._publish()
        line = self.snapshot.status_line
        self.d.observers.notify(lambda: self.d.notifier.ready(line))

    def _expire(self, now: float) -> None:
        self.assist.expire(now)
        if self.follow_up_at is not None and now >= self.follow_up_at:
            self.follow_up_at = None
            wait = self.d.settings.conversation.follow_up_s
            if self.pipeline.state == S.IDLE and self.begin_listening("follow-up", skip_s=0, wait_s=wait):
                log.info("listening %.0f s for a follow-up", wait)

    def _to(self, new: S) -> None:
        try:
            self.pipeline.to(new)
        except InvalidTransition as exc:   # a bug: say so, keep the state we are in
            log.error("core: %s (ignored)", exc)

    def _answer(self, box, value) -> None:
        """Publish first: a caller that reads the snapshot next sees what its answer says."""
        self._publish()
        box.put(value)

    def _result(self, turn, result) -> dict:
        result = result or {}
        return {"transcript": turn.transcript if turn else "", "reply": turn.reply if turn else "",
                "language": turn.language if turn else "",
                "audio": result.get("audio"), "sample_rate": result.get("sample_rate", self.d.settings.audio.output_rate),
                "outcome": turn.outcome if turn else "", "timings": turn.durations() if turn else {},
                "turn": turn.id if turn else 0, "error": result.get("error")}

    # -- what others see ------------------------------------------------------------------------
    def _on_state(self, old: S, new: S, turn) -> None:
        self.state_since = time.monotonic()
        events = self.d.events
        self.d.observers.notify(lambda: events.publish("state", state=new.value, previous=old.value,
                                                       turn=turn.id if turn else None))

    def _on_turn_end(self, turn) -> None:
        self.d.observers.notify(lambda: self.d.turn_ended(turn))

    def _publish(self) -> None:
        d, now = self.d, time.monotonic()
        mic = MicFacts()
        if d.capture.started:
            h = d.capture.health()
            mic = MicFacts(True, h.ok, h.device, h.detail, h.last_frame_age_s, h.reopen_count)
        state = self.pipeline.state
        snap = Snapshot(state, self.state_since, now, self.pipeline.current, tuple(self.pipeline.turns), mic,
                        self.hung_stages, self.pending_reload is not None, "")
        line = d.status_line(snap)
        self.snapshot = replace(snap, status_line=line)
        if line != self._last_status and state not in (S.STARTING, S.STOPPING):
            self._last_status = line
            d.observers.notify(lambda: d.notifier.status(line))
