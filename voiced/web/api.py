"""The JSON API: health, status, events, trigger, utterance upload, say, reply audio, metrics.

Slow work (decoding, Whisper, the TTS) runs in the threadpool, never on the event loop.
Requests are posted to the daemon's turn owner, which alone decides whether a turn starts:
a request it refuses gets 409 (busy) or 503 (starting, stopping). Health and state are read
from the owner's snapshot."""
from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from .. import meter as meter_mod
from ..audio.decode import wav_bytes
from ..engines.base import EngineError
from ..pipeline import PipelineState as S
from . import metrics as metrics_mod
from .errors import ApiError, errors
from .styles import style_for, style_from_form
from .upload import BadUpload, audio_field, decode_upload, form_parts

log = logging.getLogger(__name__)
router = APIRouter()


class Accepted(BaseModel):
    accepted: bool
    state: str


class SayIn(BaseModel):
    text: str = Field(description="What to say; not blank, at most [web] max_say_chars characters")
    voice: str | None = Field(None, description="a stored voice's name (GET /api/voices); absent = the default voice")
    speed: float | None = Field(None, ge=0.5, le=2.0, description="speaking rate, 0.5-2.0 (pitch kept)")
    pitch: float | None = Field(None, ge=-6.0, le=6.0, description="semitones, -6 to +6 (tempo kept)")
    exaggeration: float | None = Field(None, ge=0.0, le=2.0, description="Chatterbox's emotion intensity, 0-2")


class UtteranceOut(BaseModel):
    transcript: str = Field(description="What Whisper heard; empty when nothing usable was heard")
    language: str = Field("", description="The request's language (ISO 639-1), when known")
    reply: str
    audio_url: str | None = Field(description="The reply as 24 kHz mono 16-bit WAV (kept in memory, "
                                              "the last few only); null when there is no reply")
    timings: dict[str, float] = Field(description="Seconds per stage (decode, stt, respond, tts, request)")
    outcome: str = Field(description="answered, rejected: ..., dropped: ...")
    turn: int


UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["audio"],
    "properties": {"audio": {"type": "string", "format": "binary",
                             "description": "A recording: webm/opus or ogg/opus (what MediaRecorder makes), "
                                            "wav, flac, mp3..."},
                   "voice": {"type": "string", "description": "a stored voice for the reply"},
                   "speed": {"type": "number", "minimum": 0.5, "maximum": 2.0},
                   "pitch": {"type": "number", "minimum": -6, "maximum": 6},
                   "exaggeration": {"type": "number", "minimum": 0, "maximum": 2}}}}}}}


class ReplyStore:
    """The last few reply WAVs, in memory only (voiced writes no audio to disk)."""

    def __init__(self, keep: int):
        self.keep = keep
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, turn: int, wav: bytes) -> str:
        key = f"{turn}-{secrets.token_hex(4)}"   # not guessable from the turn number alone
        with self._lock:
            self._items[key] = wav
            while len(self._items) > self.keep:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._items.get(key)


def ready(daemon, busy_ok: bool = False) -> None:
    state = daemon.snapshot().state
    if state in (S.STARTING, S.STOPPING) or (not busy_ok and state != S.IDLE):
        raise _busy(daemon)


def _busy(daemon) -> ApiError:
    """A request that will not be served now: 503 while starting or stopping, else 409."""
    state = daemon.snapshot().state
    if state in (S.STARTING, S.STOPPING):
        return ApiError(503, f"voiced is {state.value}")
    return ApiError(409, f"voiced is busy ({state.value}); try again when it is idle")


@router.get("/healthz", tags=["health"], responses={503: {"description": "the daemon is stuck"}})
def healthz(request: Request) -> JSONResponse:
    """Liveness, the same verdict as the systemd watchdog: 200 while the core steps and no
    stage is stuck, also while starting or with the microphone down (the reason says so)."""
    daemon = request.app.state.daemon
    alive, why = daemon.alive()
    body = {"alive": alive, "reason": why, "state": daemon.snapshot().state.value}
    return JSONResponse(body if alive else {**body, "error": why}, status_code=200 if alive else 503)


@router.get("/readyz", tags=["health"], responses={503: {"description": "a request sent now would not be served"}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 only when an upload, `say` or trigger sent now would be served (idle);
    503 while starting (models loading), busy with a turn, or stopping."""
    daemon = request.app.state.daemon
    ok, why = daemon.ready()
    body = {"ready": ok, "reason": why, "state": daemon.snapshot().state.value}
    return JSONResponse(body if ok else {**body, "error": why}, status_code=200 if ok else 503)


@router.get("/api/status", tags=["status"])
def status(request: Request) -> dict:
    """State, devices, engines, GPU, counts, latency figures and the last turns."""
    return request.app.state.daemon.status()


@router.get("/api/events", tags=["status"], response_class=StreamingResponse,
            responses={200: {"description": "Server-Sent Events: one JSON object per `data:` line with a "
                                            "`type` (hello, state, transcript, reply, turn, error, recovery)",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def events(request: Request) -> StreamingResponse:
    """Live updates; `: keep-alive` comments every 15 s."""
    daemon = request.app.state.daemon
    hello = {"type": "hello", "state": daemon.snapshot().state.value, "time": time.time()}
    return request.app.state.streams.response(hello)   # sse-starlette: keep-alives, disconnects


@router.get("/api/meter", tags=["status"], response_class=StreamingResponse,
            responses={200: {"description": "Server-Sent Events, about 5 a second: `level_db` (the microphone's "
                                            "RMS level in dBFS, null when no audio reached the wake word or "
                                            "end-pointer since the last one), `scores` (each wake word's highest "
                                            "score since the last one), `threshold`, `state`, `mic`",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def meter(request: Request) -> StreamingResponse:
    """The live microphone level and wake word scores for the status page. The daemon
    measures them only while at least one of these streams is open."""
    state = request.app.state
    return StreamingResponse(meter_mod.stream(state.daemon, _meter_closed(state)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _meter_closed(state) -> threading.Event:
    """Set when the server stops (its `state.close`), so open meter streams end at once."""
    closed = getattr(state, "meter_closed", None)
    if closed is None:
        closed = state.meter_closed = threading.Event()
        close_before = getattr(state, "close", None)

        def close() -> None:
            closed.set()
            if close_before is not None:
                close_before()
        state.close = close
    return closed


@router.post("/api/trigger", tags=["turns"], status_code=202, response_model=Accepted,
             responses=errors(409, 503))
def trigger(request: Request) -> Accepted:
    """Start a listening turn as if the wake word had been heard."""
    daemon = request.app.state.daemon
    ready(daemon)
    if not daemon.begin_listening("api"):
        raise _busy(daemon)
    return Accepted(accepted=True, state=daemon.snapshot().state.value)


@router.post("/api/utterance", tags=["turns"], response_model=UtteranceOut, openapi_extra=UPLOAD_BODY,
             responses=errors(400, 409, 413, 415, 422, 503))
async def utterance(request: Request) -> UtteranceOut:
    """A recorded request (multipart field `audio`; optional `voice`, `speed`, `pitch`,
    `exaggeration` for the reply) -> transcript, reply and the reply's audio."""
    t0 = time.monotonic()
    app = request.app.state
    ready(app.daemon)
    body = await request.body()   # GuardMiddleware has already capped its size
    try:
        fields = form_parts(request.headers.get("content-type"), body)
        data, mime = audio_field(fields)
        style = style_from_form(app.daemon, fields)
        if len(data) > app.web.max_upload_bytes:
            raise BadUpload(413, f"upload over {app.web.max_upload_bytes} bytes ([web] max_upload_bytes)")
        audio = await run_in_threadpool(decode_upload, data, mime, app.web.max_upload_seconds)
    except BadUpload as exc:
        raise ApiError(exc.status, str(exc)) from None
    decoded = time.monotonic()
    try:
        result = await run_in_threadpool(app.daemon.handle_utterance, audio, "browser", style)
    except EngineError as exc:
        raise ApiError(503, f"the speech engine failed: {exc}") from None
    if result is None:
        raise _busy(app.daemon)
    url = None
    if result["audio"] is not None and len(result["audio"]):
        wav = await run_in_threadpool(wav_bytes, result["audio"], result["sample_rate"])
        url = str(request.url_for("reply_audio", key=app.replies.put(result["turn"], wav)).path)
    timings = {"decode": round(decoded - t0, 3), **result["timings"], "request": round(time.monotonic() - t0, 3)}
    return UtteranceOut(transcript=result["transcript"], language=result.get("language", ""),
                        reply=result["reply"], audio_url=url, timings=timings,
                        outcome=result["outcome"], turn=result["turn"])


@router.get("/api/replies/{key}.wav", name="reply_audio", tags=["turns"], response_class=Response,
            responses={200: {"content": {"audio/wav": {}}, "description": "24 kHz mono 16-bit WAV"},
                       **errors(404)})
def reply_audio(request: Request, key: str = Path(pattern=r"^\d{1,12}-[0-9a-f]{8}$")) -> Response:
    """A recent reply's audio (only the last [web] keep_replies are kept)."""
    wav = request.app.state.replies.get(key)
    if wav is None:
        raise ApiError(404, "no such reply (only the last few replies are kept, in memory)")
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/api/say", tags=["turns"], status_code=202, response_model=Accepted,
             responses=errors(400, 409, 422, 503))
def say(request: Request, body: SayIn) -> Accepted:
    """Speak the text through the daemon's speaker (optionally in another voice, speed, pitch)."""
    app = request.app.state
    text = body.text.strip()
    if not text:
        raise ApiError(422, "text is empty")
    if len(text) > app.web.max_say_chars:
        raise ApiError(422, f"text is longer than {app.web.max_say_chars} characters ([web] max_say_chars)")
    style = style_for(app.daemon, body.voice, body.speed, body.pitch, body.exaggeration)
    ready(app.daemon)
    if not app.daemon.say(text, style):
        raise _busy(app.daemon)
    return Accepted(accepted=True, state=app.daemon.snapshot().state.value)


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse,
            responses={200: {"content": {metrics_mod.CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> PlainTextResponse:
    """Turns, errors, recoveries, stage latency histograms, VRAM."""
    return PlainTextResponse(request.app.state.metrics.render(), media_type=metrics_mod.CONTENT_TYPE)
