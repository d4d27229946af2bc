"""Pluggable responders: make_responder(settings) picks one by name."""
from __future__ import annotations

from ..config import ResponderSettings
from .base import Context, Reply, Responder
from .builtin import BuiltinResponder

__all__ = ["Context", "Reply", "Responder", "make_responder"]


def make_responder(settings: ResponderSettings) -> Responder:
    builtin = BuiltinResponder()
    if settings.kind == "command":
        from .command import CommandResponder
        return CommandResponder(settings.command, settings.timeout_s, settings.max_reply_chars, builtin,
                                settings.command_side_effect_free)
    if settings.kind == "openai":
        from .openai import OpenAIResponder
        return OpenAIResponder(settings, builtin)
    return builtin
