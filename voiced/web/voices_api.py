"""The voices API: list, add (a reference clip upload), remove, choose the default."""
from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..voices import VoiceError
from .errors import ApiError, errors
from .upload import BadUpload, audio_field, form_parts, number_field, text_field

router = APIRouter()
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
STATUS = {"invalid": 422, "unknown": 404, "exists": 409}


class VoiceOut(BaseModel):
    name: str
    seconds: float = Field(description="length of the stored reference clip")
    added: float = Field(description="Unix time it was added")
    speed: float | None
    pitch: float | None
    exaggeration: float | None
    default: bool


class VoicesOut(BaseModel):
    default: str | None = Field(description="the voice replies use unless a request names one; null = [tts] voice")
    voices: list[VoiceOut]
    engine: str | None = Field(description="the TTS engine speaking now; only chatterbox clones the clip, "
                                           "every engine applies speed and pitch")


class DefaultIn(BaseModel):
    name: str | None = Field(description="a stored voice, or null for the configured [tts] voice")


def _voice_error(exc: VoiceError) -> ApiError:
    return ApiError(STATUS.get(exc.kind, 422), f"{exc.field}: {exc}" if exc.field else str(exc))


@router.get("/api/voices", tags=["voices"], response_model=VoicesOut)
def list_voices(request: Request) -> VoicesOut:
    """The stored voices and which one is the default."""
    daemon = request.app.state.daemon
    default = daemon.voices.default_name()
    info = daemon.tts.info if daemon.tts is not None else None
    return VoicesOut(default=default, voices=[VoiceOut(**v.json(v.name == default)) for v in daemon.voices.list()],
                     engine=info.name if info else None)


@router.post("/api/voices", tags=["voices"], status_code=201, response_model=VoiceOut,
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["name", "audio"],
                 "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                                "audio": {"type": "string", "format": "binary",
                                          "description": "3-30 s of one speaker (wav, flac, ogg, mp3, webm)"},
                                "speed": {"type": "number"}, "pitch": {"type": "number"},
                                "exaggeration": {"type": "number"}}}}}}},
             responses=errors(400, 409, 413, 415, 422))
async def add_voice(request: Request) -> VoiceOut:
    """Add a voice from a reference clip (multipart fields `name`, `audio`, optional `speed`,
    `pitch`, `exaggeration`). The clip is checked: length, sample rate, level, speech."""
    app = request.app.state
    body = await request.body()   # GuardMiddleware has already capped its size
    try:
        fields = form_parts(request.headers.get("content-type"), body)
        data, _mime = audio_field(fields)
        if len(data) > app.web.max_upload_bytes:
            raise BadUpload(413, f"upload over {app.web.max_upload_bytes} bytes ([web] max_upload_bytes)")
        name = text_field(fields, "name") or ""
        values = {k: number_field(fields, k) for k in ("speed", "pitch", "exaggeration")}
    except BadUpload as exc:
        raise ApiError(exc.status, str(exc)) from None
    try:
        voice = await run_in_threadpool(lambda: app.daemon.voices.add(name, data, **values))
    except VoiceError as exc:
        raise _voice_error(exc) from None
    return VoiceOut(**voice.json(app.daemon.voices.default_name() == voice.name))


@router.delete("/api/voices/{name}", tags=["voices"], responses=errors(400, 404, 422))
def remove_voice(request: Request, name: str = Path(pattern=NAME_PATTERN)) -> dict:
    """Remove a voice, its clip and its cached conditionals."""
    try:
        request.app.state.daemon.voices.remove(name)
    except VoiceError as exc:
        raise _voice_error(exc) from None
    return {"removed": name}


@router.put("/api/voices/default", tags=["voices"], responses=errors(400, 404, 422))
def set_default(request: Request, body: DefaultIn) -> dict:
    """Choose the voice replies use (null: the configured [tts] voice)."""
    try:
        request.app.state.daemon.voices.set_default(body.name)
    except VoiceError as exc:
        raise _voice_error(exc) from None
    return {"default": body.name or None}
