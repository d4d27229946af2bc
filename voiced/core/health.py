"""What the daemon tells the world about itself, built from one frozen snapshot.

The turn owner publishes a `Snapshot` after every step; /healthz, /readyz, /api/status,
STATUS= and the systemd watchdog read snapshots only, so they all tell the same story.

Policy: a daemon without a microphone is degraded but alive (the mic is retried forever and
systemd never restarts it for that; uploads and `say` still work). Not alive means stuck:
the owner took no step within [watchdog] loop_deadline_s, a stage ran past its deadline, or
stages keep being abandoned. Ready means a request sent now would be served.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..pipeline import PipelineState as S
from ..pipeline import Turn

BUSY = (S.LISTENING, S.TRANSCRIBING, S.THINKING, S.SPEAKING)
SLOW_STAGES = (S.TRANSCRIBING, S.THINKING, S.SPEAKING)


@dataclass(frozen=True)
class MicFacts:
    started: bool = False
    ok: bool = False
    device: str = "(not open)"
    detail: str = "not started"
    last_frame_age_s: float = float("inf")
    reopens: int = 0


@dataclass(frozen=True)
class Snapshot:
    state: S = S.STARTING
    state_since: float = field(default_factory=time.monotonic)
    step_at: float = field(default_factory=time.monotonic)   # the owner's last step
    turn: Turn | None = None
    turns: tuple[Turn, ...] = ()
    mic: MicFacts = MicFacts()
    hung_stages: int = 0
    reload_pending: bool = False
    status_line: str = "starting"


def liveness(snap: Snapshot, now: float, loop_deadline_s: float, stage_deadline_s: float,
             hung_to_restart: int) -> tuple[bool, str]:
    """(alive, why): the systemd watchdog pings and /healthz answers 200 only while alive."""
    step_age = now - snap.step_at
    if step_age > loop_deadline_s:
        return False, f"core loop stuck: no step for {step_age:.1f} s (limit {loop_deadline_s:g} s)"
    if snap.hung_stages >= hung_to_restart:
        return False, f"{snap.hung_stages} stages in a row were abandoned (hung engine)"
    age = now - snap.state_since
    if snap.state in SLOW_STAGES and age > stage_deadline_s:
        return False, f"stage {snap.state.value} running for {age:.1f} s (limit {stage_deadline_s:g} s)"
    if snap.state == S.STARTING:
        return True, "starting: loading models"
    if snap.state == S.STOPPING:
        return True, "stopping"
    parts = []
    if not snap.mic.started:
        parts.append("no microphone in use")
    elif not snap.mic.ok:
        parts.append(f"mic down: {snap.mic.detail}")
    else:
        parts.append(f"last frame {snap.mic.last_frame_age_s:.1f} s ago")
    if snap.state in SLOW_STAGES:
        parts.append(f"{snap.state.value} for {age:.1f} s")
    return True, ", ".join(parts)


def readiness(snap: Snapshot) -> tuple[bool, str]:
    """(ready, why): would an upload, `say` or trigger sent now be served?"""
    if snap.state == S.STARTING:
        return False, "starting: loading models"
    if snap.state == S.STOPPING:
        return False, "stopping"
    if snap.state != S.IDLE:
        return False, f"busy: {snap.state.value}"
    return True, "idle" + ("" if snap.mic.ok or not snap.mic.started else f" (mic down: {snap.mic.detail})")
