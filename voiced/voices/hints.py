"""A responder may choose how its reply is spoken by starting it with a tag:
"[voice=alice speed=1.1 pitch=-1 emotion=0.7] Sure, here it is." When [voices]
responder_styles is on, the tag is taken off the text and turned into a VoiceStyle, bounded
by the config: values are clamped to their ranges, and only allowed, stored voices are used.
With it off, replies are spoken as they come (a tag would be read out)."""
from __future__ import annotations

import logging
import re

from ..audio import effects
from ..config import VoicesSettings
from ..engines.base import VoiceStyle

log = logging.getLogger(__name__)
TAG = re.compile(r"^\s*\[((?:\s*(?:voice|speed|pitch|emotion)\s*=\s*[\w.+-]+\s*,?)+)\]\s*", re.I)
PAIR = re.compile(r"(voice|speed|pitch|emotion)\s*=\s*([\w.+-]+)", re.I)
BOUNDS = {"speed": effects.SPEED_RANGE, "pitch": effects.PITCH_RANGE, "emotion": (0.0, 2.0)}


def split_tag(text: str) -> tuple[str, dict[str, str]]:
    """(text without a leading style tag, the tag's key=value pairs)."""
    m = TAG.match(text)
    if not m:
        return text, {}
    return text[m.end():], {k.lower(): v for k, v in PAIR.findall(m.group(1))}


def instruction(settings: VoicesSettings, names: list[str]) -> str:
    """What the responder is told it may do (added to the openai system prompt)."""
    allowed = [n for n in names if not settings.responder_voices or n in settings.responder_voices]
    voices = f"voice={'|'.join(allowed)} " if allowed else ""
    return ("You may start a reply with one tag that sets how it is spoken, e.g. "
            f"[{voices}speed=1.1 pitch=-1 emotion=0.7]: speed {BOUNDS['speed'][0]:g}-{BOUNDS['speed'][1]:g}, "
            f"pitch in semitones {BOUNDS['pitch'][0]:g} to {BOUNDS['pitch'][1]:+g}, emotion 0-2 (0.5 = neutral). "
            "Leave it out to speak normally.")


def styled(text: str, store, settings: VoicesSettings) -> tuple[str, VoiceStyle | None]:
    """The reply's text to speak, and the style its tag asks for (None: no tag, or hints off)."""
    if not settings.responder_styles:
        return text, None
    text, pairs = split_tag(text)
    if not pairs:
        return text, None
    values: dict[str, float] = {}
    for key in ("speed", "pitch", "emotion"):
        if key in pairs:
            try:
                low, high = BOUNDS[key]
                values[key] = min(high, max(low, float(pairs[key])))
            except ValueError:
                log.info("responder style: %s=%r is not a number; ignored", key, pairs[key])
    name = pairs.get("voice")
    known = {v.name for v in store.list()}
    if name and (name not in known or (settings.responder_voices and name not in settings.responder_voices)):
        log.info("responder style: voice %r is not allowed or not stored; the default voice speaks", name)
        name = None
    style = store.style(name, speed=values.get("speed"), pitch=values.get("pitch"),
                        exaggeration=values.get("emotion"))
    log.info("responder style: %s", {k: v for k, v in (("voice", name), *values.items()) if v is not None})
    return text, style
