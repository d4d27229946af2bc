"""Turn workers: the slow stages of one turn (STT, responder, TTS and playback) off the owner.

A worker never changes the turn state: it posts Progress and one Finished message, tagged
with its turn id, and the owner decides (a message of a turn that was cancelled meanwhile is
dropped there). Each stage is bounded by its deadline; a cancelled job stops between stages
and its playback is cut by the owner through the speaker.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio import dsp
from ..deadlines import StageTimeout, call_with_deadline, iter_with_deadline
from ..engines.base import EngineError, Transcript, VoiceStyle
from ..pipeline import PipelineState as S
from ..voices import hints
from .conversation import is_cancel, wants_follow_up
from .messages import Finished, Progress

log = logging.getLogger("voiced.app")
RATE = 16_000
# The responder bounds its own calls ([responder] timeout_s); its stage deadline adds this.
RESPOND_MARGIN_S = 5.0


@dataclass
class TurnJob:
    turn: int
    post: object                        # the owner's post()
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    box: object = None                  # the ReplyBox of a caller waiting for the result (uploads)
    done: bool = False

    def progress(self, state=None, mark: str = "", hung: bool | None = None, **fields) -> None:
        self.post(Progress(self.turn, state, mark, fields, hung))

    def finish(self, outcome: str, **kw) -> None:
        self.done = True
        self.post(Finished(self.turn, outcome, **kw))


class Ended(Exception):
    """The turn ended before its reply (dropped, rejected, cancelled); Finished was posted."""


# Whisper base's "auto" among ~99 languages under this probability was wrong on 4 of 20 real
# Spanish sentences (tests/test_stt_languages.py); a list of the household's languages was right.
UNSURE_LANGUAGE_P = 0.5


class TurnWorker:
    def __init__(self, daemon):
        self.d = daemon
        self._language_hint_given = False

    # -- entry points, each on its own thread -----------------------------------
    def spoken(self, job: TurnJob, pcm: np.ndarray, early=None) -> None:
        """A request recorded from the microphone: answer it through the speaker."""
        self._guard(job, lambda: self._spoken(job, pcm, early))

    def say(self, job: TurnJob, text: str, style: VoiceStyle | None) -> None:
        def run():
            played = self.d.speaker.play(self.speech(job, text, style), tag=job.turn,
                                         on_first_audio=lambda: job.progress(mark="first_audio"))
            job.finish(_played_outcome(played, "spoken"))
        self._guard(job, run)

    def utterance(self, job: TurnJob, audio: np.ndarray, style: VoiceStyle | None) -> None:
        """An uploaded request: the reply comes back as audio (Finished.result), not played."""
        def run():
            try:
                _transcript, reply = self.understand(job, audio)
            except Ended:
                return
            job.progress(S.SPEAKING)
            parts, rate = [], self.d.settings.audio.output_rate
            for chunk in self.speech(job, reply.text, style or reply.style, reply.language):
                if job.cancel.is_set():
                    return
                if not parts:
                    job.progress(mark="first_audio")
                parts.append(dsp.resample(chunk.audio, chunk.sample_rate, rate))
            audio_out = (dsp.normalize_loudness(np.concatenate(parts), self.d.settings.audio.output_target_lufs, rate)
                         if parts else np.zeros(0, np.float32))
            job.finish("answered", result={"audio": audio_out, "sample_rate": rate})
        self._guard(job, run, raise_to_caller=True)

    def play_media(self, job: TurnJob, media: tuple, tell_home_assistant: bool, follow_up: bool) -> None:
        """Home Assistant's reply or announcement: URLs (fetched) or (audio, rate) pairs; play
        them, then say they were played."""
        from ..engines.base import SpeechChunk
        from ..homeassistant.media import fetch_audio

        def run():
            rate = self.d.settings.audio.output_rate
            chunks = [SpeechChunk(fetch_audio(item, rate) if isinstance(item, str)
                                  else dsp.resample(item[0], item[1], rate), rate) for item in media]
            sat = getattr(self.d, "satellite", None)
            if sat is not None:
                sat.media_state(True)
            played = self.d.speaker.play(chunks, tag=job.turn, on_first_audio=lambda: job.progress(mark="first_audio"))
            if sat is not None:
                sat.media_state(False)
                if tell_home_assistant:
                    sat.played(played.ok and not played.cut)
            job.finish(_played_outcome(played, "answered by Home Assistant"), follow_up=follow_up and played.ok
                       and not played.cut)
        self._guard(job, run)

    def ring(self, job: TurnJob, seconds: float) -> None:
        """A finished timer rings until the turn is cancelled (wake word, hotkey) or `seconds`."""
        from ..engines.base import SpeechChunk
        from ..homeassistant.media import ring_tone

        def run():
            rate = self.d.settings.audio.output_rate
            tone, end = SpeechChunk(ring_tone(rate), rate), time.monotonic() + seconds
            while not job.cancel.is_set() and time.monotonic() < end:
                played = self.d.speaker.play([tone], tag=job.turn, level=False)
                if not played.ok:
                    job.finish(f"not played: {played.detail}")
                    return
            if not job.cancel.is_set():
                job.finish("timer rang out")
        self._guard(job, run)

    # -- the stages -------------------------------------------------------------
    def _spoken(self, job: TurnJob, pcm: np.ndarray, early) -> None:
        if self.d.settings.audio.save_requests_dir:
            self._save_request(job, pcm)
        try:
            _transcript, reply = self.understand(job, pcm, early)
        except Ended:
            return
        job.progress(S.SPEAKING)
        if early is not None and early.answered and early.reply is reply:
            # Prepared at the pause: its first sentence plays now, the rest is made meanwhile.
            audio = self._held_then(job, early)
        else:
            audio = self.speech(job, reply.text, reply.style, reply.language)
        played = self.d.speaker.play(audio, tag=job.turn, on_first_audio=lambda: job.progress(mark="first_audio"))
        outcome = _played_outcome(played, "answered")
        job.finish(outcome, follow_up=wants_follow_up(self.d.settings.conversation.follow_up_s, outcome,
                                                      played.ok, played.cut))

    def understand(self, job: TurnJob, pcm: np.ndarray, early=None):
        """Quality check, STT, cancel phrases and the responder; raises Ended if nothing to answer.
        `early`: the Speculation started at the turn's last pause, whose work is used if it did it."""
        d = self.d
        transcript = self._speculated(job, early) if early is not None else None
        if transcript is None:
            audio, why = d.prepare_request(pcm)
            if audio is None:
                log.info("capture dropped: %s", why)
                job.finish(f"dropped: {why}")
                raise Ended
            transcript = self._bounded(job, "stt", lambda: d.stt.transcribe(audio), d.settings.watchdog.stt_timeout_s)
        language = getattr(transcript, "language", "") or ""
        self._hint_unsure_language(transcript)
        job.progress(mark="transcript", transcript=transcript.text, language=language)
        if not transcript.text:
            log.info("nothing to answer: %s (model said %r)", transcript.rejected, transcript.raw_text)
            job.finish(f"rejected: {transcript.rejected}")
            raise Ended
        d.events.publish("transcript", text=transcript.text, turn=job.turn, language=language)
        if is_cancel(transcript.text, d.settings.conversation.cancel_phrases):
            log.info("cancelled by %r", transcript.text)
            job.finish("cancelled")
            raise Ended
        if job.cancel.is_set():
            raise Ended
        job.progress(S.THINKING)
        if early is not None and early.answered and early.transcript is transcript:
            reply = early.reply
        else:
            d.context.language = language
            reply = self._bounded(job, "respond", lambda: d.responder.respond(transcript.text, d.context),
                                  d.settings.responder.timeout_s + RESPOND_MARGIN_S)
            text, style = hints.styled(reply.text, d.voices, d.settings.voices)
            if style is not None:
                reply = replace(reply, text=text, style=style)
        if reply.note:
            log.info("responder %s: %s", reply.source, reply.note)
        job.progress(mark="reply", reply=reply.text)
        d.events.publish("reply", text=reply.text, source=reply.source, turn=job.turn)
        if language and not reply.language:
            reply = replace(reply, language=language)
        d.context.history.append((transcript.text, reply.text))
        del d.context.history[:-20]
        if job.cancel.is_set():
            raise Ended
        return transcript, reply

    def _hint_unsure_language(self, transcript: Transcript) -> None:
        """Once: "auto" guessed with little confidence; a list of languages is the fix."""
        p = getattr(transcript, "language_probability", None)
        if self._language_hint_given or p is None or p >= UNSURE_LANGUAGE_P or self.d.settings.stt.allowed_languages:
            return
        self._language_hint_given = True
        log.info("language detection was unsure (%s, p=%.2f): with [stt] language = \"auto\" Whisper chooses "
                 "among ~99 languages; a list of the languages spoken here (e.g. [\"en\", \"%s\"]) is far more "
                 "reliable", transcript.language, p, transcript.language if transcript.language != "en" else "de")

    def speech(self, job: TurnJob, text: str, style: VoiceStyle | None = None, language: str = ""):
        """The reply's audio, sentence by sentence, each within the TTS deadline; in another
        language than the home one, by that language's voice (engines/language_voices.py)."""
        d = self.d
        style = style or d.default_style()
        tts = d.language_voices.engine_for(language) or d.tts
        key = (tts.info.name if getattr(tts, "info", None) else language, text, style, _mtime(style.clip))

        def speech():
            if tts is d.tts and d.settings.tts.engine == "wyoming":
                # Not cached here: while the remote is down the local voice answers, and that
                # audio must not be replayed for the remote once it is back.
                return d.tts.synthesize(text, style)
            return d.phrases.speak(key, lambda: tts.synthesize(text, style))
        try:
            for chunk in iter_with_deadline("tts", speech, d.settings.watchdog.tts_chunk_timeout_s):
                if job.cancel.is_set():
                    return
                yield chunk
        except StageTimeout:
            job.progress(hung=True)
            raise
        job.progress(hung=False)

    def _bounded(self, job: TurnJob, stage: str, fn, seconds: float):
        try:
            result = call_with_deadline(stage, fn, seconds)
        except StageTimeout:
            job.progress(hung=True)
            raise
        job.progress(hung=False)
        return result

    def _speculated(self, job: TurnJob, early) -> Transcript | None:
        """The transcript of the work started at the pause (None: transcribe the request anew).
        Its wait is bounded like the stages it runs."""
        d, w = self.d, self.d.settings.watchdog
        bound = w.stt_timeout_s + d.settings.responder.timeout_s + RESPOND_MARGIN_S + w.tts_chunk_timeout_s

        def wait():
            if not early.wait(bound):
                raise StageTimeout("speculation", bound)
        self._bounded(job, "stt", wait, bound + 1)
        if early.transcript is None or (early.error is not None and not early.transcript):
            why = early.error or "nothing worth transcribing"
            log.info("the answer started at the pause has no transcript (%s); transcribing the whole request", why)
            return None
        d.stats.count("speculations_used")
        what = "answered" if early.answered else "transcribed"
        log.info("%s at the pause: started %.2f s before the end of turn, ready %.2f s after", what,
                 early.decided_at - early.started, max(0.0, early.finished - early.decided_at))
        return early.transcript

    def _held_then(self, job: TurnJob, early):
        """The first sentence made at the pause, then the rest of the reply."""
        yield from early.held
        if early.rest and not job.cancel.is_set():
            yield from self.speech(job, early.rest, early.reply.style, early.reply.language)

    def _save_request(self, job: TurnJob, pcm: np.ndarray) -> None:
        from ..audio.decode import write_wav

        folder = Path(self.d.settings.audio.save_requests_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / f"request-{time.strftime('%Y%m%d-%H%M%S')}-{job.turn}.wav",
                  dsp.int16_to_float(pcm) if pcm.dtype == np.int16 else pcm, RATE)

    @staticmethod
    def _guard(job: TurnJob, run, raise_to_caller: bool = False) -> None:
        """Whatever happens, the owner hears how the turn ended."""
        try:
            run()
            if not job.done and not job.cancel.is_set():
                job.finish("error: the turn ended without an outcome", failed=True)
        except EngineError as exc:
            log.error("turn failed: %s", exc)
            job.finish(f"error: {exc}", failed=True, result={"error": exc} if raise_to_caller else None)
        except Exception as exc:  # a bug in one turn must not take the daemon down
            log.exception("turn crashed")
            job.finish("error: internal", failed=True, result={"error": exc} if raise_to_caller else None)


def _played_outcome(played, done: str) -> str:
    if not played.ok:
        return f"not played: {played.detail}"
    return "interrupted" if played.cut else done


def _mtime(path) -> int | None:
    """A reference clip's version: a voice replaced under the same name must not replay old audio."""
    try:
        return path.stat().st_mtime_ns if path else None
    except OSError:
        return None
