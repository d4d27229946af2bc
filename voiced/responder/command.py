"""Runs a program per turn: transcript on stdin, reply on stdout, bounded by a timeout."""
from __future__ import annotations

import logging
import subprocess

from .base import Context, Reply
from .builtin import BuiltinResponder

log = logging.getLogger(__name__)


class CommandResponder:
    name = "command"

    def __init__(self, argv: tuple[str, ...], timeout_s: float, max_chars: int, fallback: BuiltinResponder,
                 side_effect_free: bool = False):
        self.argv, self.timeout_s, self.max_chars, self.fallback = list(argv), timeout_s, max_chars, fallback
        self.side_effect_free = side_effect_free   # the user's word: [responder] command_side_effect_free

    def respond(self, transcript: str, context: Context) -> Reply:
        try:
            done = subprocess.run(self.argv, input=transcript, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return self._failed(transcript, context, f"timed out after {self.timeout_s:g} s")
        except OSError as exc:
            return self._failed(transcript, context, f"could not start {self.argv[0]!r}: {exc.strerror}")
        if done.returncode != 0:
            err = done.stderr.strip().splitlines()[-1:] or [""]
            return self._failed(transcript, context, f"exited with {done.returncode} {err[0]}".strip())
        reply = done.stdout.strip()[: self.max_chars]
        if not reply:
            return self._failed(transcript, context, "printed nothing")
        return Reply(text=reply, source=self.name)

    def _failed(self, transcript: str, context: Context, why: str) -> Reply:
        log.warning("command responder %s: %s; the builtin responder answers instead", self.argv, why)
        fallback = self.fallback.respond(transcript, context)
        return Reply(text=f"My command failed. {fallback.text}", source="builtin",
                     note=f"command responder {why}")
