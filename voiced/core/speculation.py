"""Speculation: start answering at a pause, before the turn is known to be over.

When the speaker pauses, the end of the turn is not yet confirmed: the end-of-turn model may
have said "not done", or the fixed-silence end-pointer is still counting. Whisper then needs
~0.5 s on a small CPU, the responder some time, the first sentence of speech ~0.15 s. A
Speculation runs those stages on its own thread from the pause on and holds the result: the
transcript, the reply and the first sentence's audio. If the turn ends with no more speech,
the turn worker plays the held audio with no further wait; if the speaker goes on, the
listener cancels it and the result is thrown away (the cost is CPU, never correctness).

The reply is prepared early only for a responder that declares itself free of side effects
(builtin, openai; a command only if the user says so): asking a command that switches the
lights on must wait until the user has finished. Nothing here touches the conversation
history: the worker records the turn only once it is used.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from ..engines.base import Transcript
from ..text import split_sentences
from ..voices import hints
from .conversation import is_cancel


class Speculation:
    def __init__(self, key: float, pcm: np.ndarray, daemon, answer: bool):
        self.key = key                    # which speech it covers: the end of its last speech frame
        self.started = time.monotonic()
        self.finished: float | None = None
        self.decided_at = self.started    # set when the turn's end is confirmed
        self.cancel = threading.Event()
        self.transcript: Transcript | None = None
        self.reply = None                 # the responder's Reply (styled), when answered
        self.first_sentence = ""
        self.held: list = []              # SpeechChunks of the first sentence
        self.rest = ""                    # the reply after the first sentence, spoken on confirmation
        self.error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(daemon, pcm, answer), name="speculation", daemon=True).start()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def answered(self) -> bool:
        """The reply and its first sentence of speech are ready to play."""
        return self.reply is not None and bool(self.held) and self.error is None

    def _run(self, d, pcm: np.ndarray, answer: bool) -> None:
        try:
            self.transcript = d.transcribe_request(pcm)
            text = self.transcript.text if self.transcript is not None else ""
            if not answer or not text or self.cancel.is_set():
                return
            if is_cancel(text, d.settings.conversation.cancel_phrases):
                return   # the worker handles the cancel phrase itself
            language = getattr(self.transcript, "language", "") or ""
            d.context.language = language
            reply = d.responder.respond(text, d.context)
            if language and not reply.language:
                reply = replace(reply, language=language)
            styled, style = hints.styled(reply.text, d.voices, d.settings.voices)
            if style is not None:
                reply = replace(reply, text=styled, style=style)
            if self.cancel.is_set():
                return
            sentences = split_sentences(reply.text) or [reply.text]
            held = []
            tts = d.language_voices.engine_for(reply.language) or d.tts
            for chunk in tts.synthesize(sentences[0], reply.style or d.default_style()):
                if self.cancel.is_set():
                    return
                held.append(chunk)
            self.first_sentence, self.rest, self.held = sentences[0], " ".join(sentences[1:]), held
            self.reply = reply
        except BaseException as exc:  # noqa: BLE001 - handed to the worker that uses it
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self._done.set()
