"""What the status page, `voiced status` and /metrics show: the owner's snapshot plus the
engines, devices and figures, as plain JSON types."""
from __future__ import annotations

import time

from .wyoming.server import wyoming_status


def status_report(daemon) -> dict:
    """Everything the status page and `voiced status` show."""
    snap, now = daemon.owner.snapshot, time.monotonic()
    alive, why = daemon.alive()
    ready, ready_why = daemon.ready()
    mic = snap.mic
    return {
        "state": snap.state.value,
        "status_line": snap.status_line,
        "alive": alive, "alive_reason": why, "ready": ready, "ready_reason": ready_why,
        "uptime_s": round(now - daemon.started_at, 1),
        "input": {"device": mic.device, "ok": mic.ok, "detail": mic.detail, "started": mic.started,
                  "last_frame_age_s": round(mic.last_frame_age_s, 2) if mic.last_frame_age_s < 1e9 else None,
                  "reopens": mic.reopens},
        "output": {"device": str(daemon.settings.audio.output_device), "ok": daemon.playback.ok,
                   "detail": daemon.playback.detail},
        "wake_words": list(daemon.settings.wake.models),
        "engines": {role: {"name": e.info.name, "device": e.info.device, "model": e.info.model,
                           "source": e.info.source, "notes": list(e.info.notes), "recovery": e.state}
                    for role, e in (("stt", daemon.stt), ("tts", daemon.tts)) if e is not None and e.info is not None},
        "gpu": daemon.gpu.vram(),
        "phrase_cache": daemon.phrases.stats(),
        "wyoming": wyoming_status(daemon),
        "counts": daemon.stats.counts,
        "end_of_turn": end_of_turn_status(daemon),
        "homeassistant": daemon.satellite.status() if daemon.satellite is not None
        else {"enabled": daemon.settings.homeassistant.enabled},
        "latency": daemon.stats.latency(),
        "turns": [turn_json(t) for t in snap.turns[-20:]],
    }


def end_of_turn_status(daemon) -> dict:
    """How requests end now (the configured mode may have fallen back to silence) and what
    became of the answers started at pauses."""
    ep, v, counts = daemon.endpointer, daemon.settings.vad, daemon.stats.counts
    semantic = ep is not None and ep.semantic
    detail = ""
    if v.end_of_turn == "semantic" and not semantic:
        detail = (f"model failed: {ep.model_error}" if ep is not None and ep.model_error
                  else "Smart Turn model missing: run `voiced models fetch`")
    return {"mode": "semantic" if semantic else "silence", "configured": v.end_of_turn,
            "model": ep.turn_model.name if semantic else None, "detail": detail,
            "speculations": {r: counts.get(f"speculations_{r}", 0) for r in ("started", "used", "discarded")},
            "decided_by": {b: counts.get(f"end_of_turn_{b}", 0) for b in ("model", "silence")}}


def turn_json(turn) -> dict:
    return {"id": turn.id, "trigger": turn.trigger, "time": turn.started, "transcript": turn.transcript,
            "language": turn.language,
            "reply": turn.reply, "outcome": turn.outcome, "timings": turn.durations()}
