"""Any OpenAI-compatible chat-completions server (llama.cpp, Ollama, vLLM, OpenAI itself)."""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from ..config import ResponderSettings
from .languages import language_name
from .base import Context, Reply
from .builtin import BuiltinResponder

log = logging.getLogger(__name__)
HISTORY_TURNS = 6   # earlier exchanges sent along, so follow-up questions make sense


class OpenAIResponder:
    name = "openai"
    side_effect_free = True   # it only answers; the conversation is kept by voiced

    def __init__(self, settings: ResponderSettings, fallback: BuiltinResponder):
        self.s, self.fallback = settings, fallback
        self._down = False   # say "model unreachable" once per outage, not on every turn

    def _messages(self, transcript: str, context: Context) -> list[dict]:
        hint = context.style_hint()
        if context.language and context.language != "en":
            hint = f"{hint} The user speaks {language_name(context.language)}: answer in it.".strip()
        messages = [{"role": "system", "content": f"{self.s.system_prompt} {hint}".strip()}]
        for user, assistant in context.history[-HISTORY_TURNS:]:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return messages + [{"role": "user", "content": transcript}]

    def respond(self, transcript: str, context: Context) -> Reply:
        body = json.dumps({"model": self.s.openai_model, "messages": self._messages(transcript, context),
                           "stream": False}).encode()
        headers = {"Content-Type": "application/json"}
        if self.s.openai_api_key:
            headers["Authorization"] = f"Bearer {self.s.openai_api_key}"
        request = urllib.request.Request(self.s.openai_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.s.timeout_s) as resp:
                payload = json.load(resp)
            text = str(payload["choices"][0]["message"]["content"]).strip()
            if not text:
                raise ValueError("empty reply")
        except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            why = getattr(exc, "reason", None) or exc
            log.warning("openai responder at %s failed (%s); the builtin responder answers instead",
                        self.s.openai_url, why)
            fallback = self.fallback.respond(transcript, context)
            prefix = "" if self._down else "My language model is not answering, so here is a simple answer. "
            self._down = True
            return Reply(text=prefix + fallback.text, source="builtin", note=f"openai failed: {why}")
        if self._down:
            log.info("openai responder at %s answers again", self.s.openai_url)
        self._down = False
        return Reply(text=text[: self.s.max_reply_chars], source=self.name)
