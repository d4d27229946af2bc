"""The uploaded recording: a multipart/form-data body parsed in memory (Starlette's own form
parser spools files over 1 MB to a temporary file, and voiced writes nothing to disk), then
decoded and resampled to 16 kHz mono."""
from __future__ import annotations

import numpy as np
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..audio.decode import UnreadableAudio, decode_audio, plain_message

FIELD = "audio"
MAX_PARTS = 8


class BadUpload(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def form_parts(content_type: str | None, body: bytes) -> dict[str, tuple[bytes, str]]:
    """Every field of a multipart/form-data body: name -> (bytes, declared MIME type)."""
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        raise BadUpload(415, "send multipart/form-data with the recording in a field named 'audio' "
                             f"(got Content-Type {content_type or 'none'!r})")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUpload(400, "multipart/form-data without a boundary")
    parts: list[dict] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin():
        if len(parts) >= MAX_PARTS:
            raise BadUpload(400, f"more than {MAX_PARTS} form fields")
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data, start, end):
        header[0] += data[start:end]

    def on_header_value(data, start, end):
        header[1] += data[start:end]

    def on_header_end():
        parts[-1]["headers"][header[0].decode("latin-1").lower()] = header[1].decode("latin-1")
        header[0] = header[1] = b""

    def on_part_data(data, start, end):
        parts[-1]["data"] += data[start:end]

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_part_data": on_part_data}
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadUpload(400, f"malformed multipart body: {exc}") from None
    fields: dict[str, tuple[bytes, str]] = {}
    for part in parts:
        _disp, opts = parse_options_header(part["headers"].get("content-disposition", ""))
        name = opts.get(b"name", b"").decode("latin-1")
        fields.setdefault(name, (bytes(part["data"]), part["headers"].get("content-type", "application/octet-stream")))
    return fields


def audio_part(content_type: str | None, body: bytes) -> tuple[bytes, str]:
    """(bytes, declared MIME type) of the `audio` field; BadUpload says what is wrong."""
    return audio_field(form_parts(content_type, body))


def audio_field(fields: dict[str, tuple[bytes, str]]) -> tuple[bytes, str]:
    if FIELD not in fields:
        raise BadUpload(422, f"no field named 'audio' in the form (fields: {', '.join(map(repr, fields)) or 'none'})")
    if not fields[FIELD][0]:
        raise BadUpload(400, "the 'audio' field is empty")
    return fields[FIELD]


def text_field(fields: dict[str, tuple[bytes, str]], name: str, limit: int = 200) -> str | None:
    """A short text field's value, None when absent or blank."""
    if name not in fields:
        return None
    data = fields[name][0]
    if len(data) > limit:
        raise BadUpload(422, f"field '{name}' is longer than {limit} bytes")
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise BadUpload(422, f"field '{name}' is not UTF-8 text") from None


def number_field(fields: dict[str, tuple[bytes, str]], name: str) -> float | None:
    text = text_field(fields, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadUpload(422, f"field '{name}' must be a number (got {text!r})") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadUpload(422, f"field '{name}' must be a finite number")
    return value


def decode_upload(data: bytes, mime: str, max_seconds: float) -> np.ndarray:
    """16 kHz mono float32, or BadUpload: 413 over the duration cap, 415 if not decodable."""
    try:
        return decode_audio(data, max_seconds=max_seconds)
    except UnreadableAudio as exc:
        message = str(exc)
        if message.startswith("audio longer than"):   # decode_audio stops reading at the cap
            raise BadUpload(413, f"{message} ([web] max_upload_seconds)") from None
        message = plain_message(message)
        raise BadUpload(415, f"could not read the upload as audio ({mime}): {message}") from None
