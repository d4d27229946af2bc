"""A request's voice style (voice, speed, pitch, exaggeration), for /api/say and /api/utterance."""
from __future__ import annotations

from ..engines.base import VoiceStyle
from ..voices import VoiceError
from .errors import ApiError
from .upload import BadUpload, number_field, text_field


def style_for(daemon, voice: str | None = None, speed: float | None = None, pitch: float | None = None,
              exaggeration: float | None = None) -> VoiceStyle:
    """The request's style, or ApiError 422 naming the field that is wrong."""
    try:
        return daemon.voices.style(voice, speed=speed, pitch=pitch, exaggeration=exaggeration)
    except VoiceError as exc:
        raise ApiError(422, f"{exc.field or 'voice'}: {exc}") from None


def style_from_form(daemon, fields: dict) -> VoiceStyle | None:
    """The form's style; None when it sets none (the reply may then choose its own)."""
    try:
        values = {k: number_field(fields, k) for k in ("speed", "pitch", "exaggeration")}
        voice = text_field(fields, "voice")
        if voice is None and all(v is None for v in values.values()):
            return None
        return style_for(daemon, voice, **values)
    except BadUpload as exc:
        raise ApiError(exc.status, str(exc)) from None
