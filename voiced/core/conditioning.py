"""Input conditioning: a recorded request made fit for Whisper (DC, level check, noise, gain)."""
from __future__ import annotations

import numpy as np

from ..audio import dsp
from ..config import AudioSettings

RATE = 16_000


def prepare_request(a: AudioSettings, pcm: np.ndarray) -> tuple[np.ndarray | None, str]:
    """(float32 audio, "") or (None, why it is not worth transcribing)."""
    audio = dsp.int16_to_float(pcm) if pcm.dtype == np.int16 else pcm.astype(np.float32)
    if a.remove_dc:
        audio = dsp.DcBlocker(RATE).process(audio)
    quality = dsp.check_quality(audio, a.min_level_dbfs, a.max_clipped_fraction)
    if not quality.ok:
        return None, quality.reason
    if a.noise_suppression:
        audio = dsp.suppress_noise(audio)
    if a.normalize_input:
        audio = dsp.normalize(audio, a.input_target_dbfs)
    return audio, ""
