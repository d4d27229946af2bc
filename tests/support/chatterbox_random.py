"""A Chatterbox checkpoint of the real architecture with random weights, for tests.

The real weights live only on the Hugging Face hub. To still run the real loading and
generation code (`ChatterboxTTS.from_local` + `generate`) in CI, this builds a directory
with the same five files:
  ve.safetensors      VoiceEncoder, random
  t3_cfg.safetensors  T3 shrunk to a few Llama layers (hidden size, vocabularies and
                      speaker size are fixed by chatterbox's code, the depth is not)
  s3gen.safetensors   empty: S3Gen has no config and is loaded with strict=False, so
                      it keeps its random initialisation (saves ~1 GB and the build time)
  tokenizer.json      a valid character tokenizer for EnTokenizer (ids < 704)
  conds.pt            from the real `prepare_conditionals()` on a synthetic clip
Its speech is noise: intelligibility is tested with the Piper fallback instead.

`from_local` always builds T3 from the global Llama config, so loading the checkpoint
needs the same shrink: use `with shrunk_t3(): ...` around the load.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

T3_LAYERS = 2
FORMAT = 1                        # bump to force a rebuild of cached checkpoints
_LLAMA = "Llama_520M"


@contextlib.contextmanager
def shrunk_t3(layers: int = T3_LAYERS):
    """Build (and load) T3 with `layers` transformer layers instead of 30."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    config = LLAMA_CONFIGS[_LLAMA]
    saved = config["num_hidden_layers"]
    config["num_hidden_layers"] = layers
    try:
        yield
    finally:
        config["num_hidden_layers"] = saved


def synthetic_voice(seconds: float = 2.0, f0: float = 120.0, sr: int = 24_000, seed: int = 0) -> np.ndarray:
    """A voice-like clip: a gliding harmonic tone with syllable-rate loudness and breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    clip = tone * syllables + 0.02 * rng.standard_normal(t.size)
    return (0.3 * clip / np.max(np.abs(clip))).astype(np.float32)


def write_voice(path: Path, **kwargs) -> Path:
    import soundfile as sf

    sf.write(str(path), synthetic_voice(**kwargs), 24_000, subtype="PCM_16")
    return path


def _tokenizer_json(path: Path) -> None:
    """A character-level tokenizer with EnTokenizer's special tokens; all ids < 704."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    specials = ["[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in (chr(c) for c in range(33, 127)):
        vocab[ch] = len(vocab)
    vocab["[START]"] = 255                   # T3Config.start_text_token; [STOP] is 0 like it
    tok = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.add_special_tokens(specials + ["[START]"])
    tok.save(str(path))


def build(dest: Path) -> dict:
    """Write the checkpoint into dest (a new directory). Returns timings."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import ChatterboxTTS
    from safetensors.torch import save_file

    started = time.monotonic()
    torch.manual_seed(0)
    dest.mkdir(parents=True)
    ve = VoiceEncoder().eval()
    save_file(ve.state_dict(), str(dest / "ve.safetensors"))
    with shrunk_t3():
        t3 = T3().eval()
    save_file({k: v.contiguous() for k, v in t3.state_dict().items()}, str(dest / "t3_cfg.safetensors"))
    save_file({}, str(dest / "s3gen.safetensors"))
    _tokenizer_json(dest / "tokenizer.json")
    s3gen = S3Gen().eval()
    model = ChatterboxTTS(t3, s3gen, ve, EnTokenizer(str(dest / "tokenizer.json")), "cpu")
    clip = write_voice(dest / "builtin_voice.wav", f0=110.0, seed=1)
    model.prepare_conditionals(str(clip))
    model.conds.save(dest / "conds.pt")
    clip.unlink()
    return {"build_s": time.monotonic() - started}


def checkpoint(cache_root: Path | None = None) -> tuple[Path, dict]:
    """The cached checkpoint directory, built on first use. Returns (dir, info)."""
    from importlib.metadata import version

    import chatterbox  # noqa: F401  (fail loudly here if it is missing)

    root = cache_root or Path(os.environ.get("VOICED_TEST_CACHE", "~/.cache/voiced-tests")).expanduser()
    dest = root / f"chatterbox-random-v{FORMAT}-l{T3_LAYERS}-cb{version('chatterbox-tts')}"
    marker = dest / "built.json"
    if marker.is_file():
        return dest, {**json.loads(marker.read_text()), "cached": True}
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    info = build(tmp)
    (tmp / "built.json").write_text(json.dumps(info))
    shutil.rmtree(dest, ignore_errors=True)   # an unfinished one (no marker)
    try:
        os.replace(tmp, dest)                 # other test processes see all or nothing
    except OSError:
        if not marker.is_file():              # not a parallel build that won the race
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, {**info, "cached": False}
