"""Reference clips are checked before they are kept: readable, long enough but not too long,
recorded at a usable rate, loud enough, not clipped, and holding speech. Each refusal says
which of these failed, so the user knows what to record again."""
from __future__ import annotations

import io

import numpy as np

from ..audio import dsp
from ..audio.decode import UnreadableAudio, decode_audio, plain_message

CLIP_RATE = 24_000            # what Chatterbox's S3Gen reads; kept clips are stored at this rate
MIN_SOURCE_RATE = 16_000      # below this the voice's timbre is already lost
MIN_LEVEL_DBFS = -45.0
MAX_CLIPPED = 0.01
MIN_SPEECH_S = 1.5
STORED_LEVEL_DBFS = -20.0


class InvalidClip(ValueError):
    """Why a reference clip was refused, in words for the user."""


def source_rate(data: bytes) -> int:
    """The clip's own sample rate (before any resampling)."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise InvalidClip("not audio: the file has no audio stream")
            return int(stream.codec_context.sample_rate or stream.rate or 0)
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise InvalidClip(f"not audio that can be read ({plain_message(str(exc))})") from None


def speech_seconds(audio16k: np.ndarray, vad) -> float:
    """Seconds of 80 ms frames the VAD calls speech."""
    frame = 1280
    vad.reset()
    frames = (audio16k[i:i + frame] for i in range(0, len(audio16k) - frame + 1, frame))
    pcm = (dsp.float_to_int16(f) for f in frames)
    return sum(vad.probability(f) > 0.5 for f in pcm) * frame / 16_000


def check_clip(data: bytes, min_s: float, max_s: float, vad) -> np.ndarray:
    """The clip as 24 kHz mono float32 at a standard level, or InvalidClip saying why not."""
    if not data:
        raise InvalidClip("the file is empty")
    rate = source_rate(data)
    if rate < MIN_SOURCE_RATE:
        raise InvalidClip(f"sample rate {rate} Hz is too low: record at 16 kHz or more (24 or 48 kHz is best)")
    try:
        audio = decode_audio(data, rate=CLIP_RATE, max_seconds=max_s)
    except UnreadableAudio as exc:
        if str(exc).startswith("audio longer than"):
            raise InvalidClip(f"too long: over {max_s:g} s ([voices] max_clip_s); 5-10 s is best") from None
        raise InvalidClip(f"not audio that can be read ({plain_message(str(exc))})") from None
    seconds = len(audio) / CLIP_RATE
    if seconds < min_s:
        raise InvalidClip(f"too short: {seconds:.1f} s, at least {min_s:g} s is needed ([voices] min_clip_s)")
    level = dsp.active_rms_dbfs(audio, CLIP_RATE)
    if level < MIN_LEVEL_DBFS:
        raise InvalidClip(f"too quiet: level {level:.0f} dBFS, below {MIN_LEVEL_DBFS:.0f} (silence, or a muted mic)")
    clipped = float(np.mean(np.abs(audio) >= 0.999))
    if clipped > MAX_CLIPPED:
        raise InvalidClip(f"clipped: {clipped:.1%} of the samples are at full scale; record with less gain")
    speech = speech_seconds(dsp.resample(audio, CLIP_RATE, 16_000), vad)
    if speech < MIN_SPEECH_S:
        raise InvalidClip(f"no speech heard: {speech:.1f} s of speech, at least {MIN_SPEECH_S:g} s is needed")
    return dsp.normalize(audio, STORED_LEVEL_DBFS, rate=CLIP_RATE)
