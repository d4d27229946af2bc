"""Decode any audio file or upload (wav, flac, ogg/opus, mp3, webm/opus...) to 16 kHz mono float32."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np



class UnreadableAudio(ValueError):
    """The bytes are not audio we can decode; the message says why."""


def plain_message(message: str) -> str:
    """PyAV's wording without the errno and file name that mean nothing to a user."""
    return re.sub(r"\[Errno -?\d+\] |: '<none>'", "", message)


def decode_audio(source: str | Path | bytes, rate: int = 16_000, max_seconds: float | None = None) -> np.ndarray:
    """PyAV (FFmpeg's libraries) reads every container/codec a browser or recorder produces."""
    import av

    stream_src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    parts: list[np.ndarray] = []
    total = 0
    try:
        with av.open(stream_src, mode="r") as container:
            audio_streams = [s for s in container.streams if s.type == "audio"]
            if not audio_streams:
                raise UnreadableAudio("no audio stream in the file")
            # The resampler converts any layout/format/rate to mono float32 at `rate`.
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(audio_streams[0]):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1).astype(np.float32)
                    parts.append(arr)
                    total += len(arr)
                if max_seconds is not None and total > max_seconds * rate:
                    raise UnreadableAudio(f"audio longer than {max_seconds:g} s")
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except UnreadableAudio:
        raise
    except FileNotFoundError:
        raise UnreadableAudio(f"no such file: {source}") from None
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise UnreadableAudio(f"cannot decode audio: {exc}") from None
    if not parts:
        raise UnreadableAudio("the file holds no audio samples")
    return np.concatenate(parts)


def read_wav_any_rate(path: str | Path) -> tuple[np.ndarray, int]:
    """Float32 mono samples and their rate via soundfile (for test fixtures and references)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def write_wav(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV."""
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1, 1), rate, subtype="PCM_16")


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()
