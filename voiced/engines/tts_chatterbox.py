"""Chatterbox TTS (Resemble AI) as a TextToSpeech engine: one SpeechChunk per sentence.

Upstream has no streaming, so the reply is split into sentences (voiced.text) and each is
generated on its own: playback starts after the first sentence, and a runaway generation
costs at most one sentence. A reference voice's conditionals are computed once and kept
on disk, because preparing them runs the voice encoder, the speech tokenizer and S3Gen's
speaker encoder over the clip (seconds on a CPU) and the result depends only on the clip.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio import effects
from ..config import Settings, TtsSettings, models_dir
from ..models import chatterbox as weights
from ..text import speakable, split_sentences
from .base import (
    EngineInfo,
    FatalEngineError,
    MissingDependency,
    PLAIN,
    OutOfMemory,
    SpeechChunk,
    VoiceStyle,
)

log = logging.getLogger(__name__)

TOKENS_PER_SECOND = 25          # S3 speech tokens run at 25 Hz
CHARS_PER_SECOND = 12           # slow speech: a sentence of this many chars per second fits
WARMUP_TOKENS = 10
VOICES_IN_MEMORY = 8            # named voices' conditionals kept loaded (a few MB each)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FatalEngineError("tts.device = \"cuda\" but torch sees no CUDA device")
    return device


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or \
        (isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in
                                               ("out of memory", "can't allocate memory")))


class ChatterboxEngine:
    """TextToSpeech with Chatterbox. Construct cheaply; `load()` does the heavy work."""

    name = "chatterbox"

    def __init__(self, tts: TtsSettings, settings: Settings | None = None):
        self.tts = tts
        self.settings = settings or Settings()
        self.sample_rate = 24_000                 # replaced by model.sr on load
        self.model = None
        self.device = ""
        self.conds_source = ""                    # "builtin", "computed" or "cache"
        self.last_speech_tokens: list[int] = []   # tokens T3 produced per sentence, last reply
        self._token_limit = tts.max_speech_tokens
        self._lock = threading.Lock()
        self._info: EngineInfo | None = None
        self._builtin_conds = None
        self._default_conds = None                # what tts.voice gave: used when a reply names no clip
        self._digests: dict[tuple, str] = {}      # (clip, size, mtime) -> content hash: no re-read per reply
        self._voices: dict[Path, object] = {}     # cache file -> loaded conditionals
        self.voice_note = ""                      # why the last reply did not use its voice

    # ---- loading -------------------------------------------------------------------
    def load(self) -> EngineInfo:
        try:
            from chatterbox.tts import ChatterboxTTS
        except ImportError as exc:
            raise MissingDependency(f"chatterbox-tts is not importable ({exc}); install it with "
                                    "scripts/setup.sh (it is installed with --no-deps)") from exc
        self.device = resolve_device(self.tts.device)
        started = time.monotonic()
        try:
            self.model, source = self._load_model(ChatterboxTTS)
            self.sample_rate = int(self.model.sr)
            self._bound_speech_tokens(self.model.t3)
            self._builtin_conds = self.model.conds      # from conds.pt, or None
            notes = [self.use_voice(self.tts.voice)]
        except Exception as exc:
            if _is_oom(exc):
                self._release()
                raise OutOfMemory(f"Chatterbox did not fit on {self.device}: {exc}") from exc
            raise
        notes.append(f"max {self._token_limit} speech tokens per sentence")
        log.info("chatterbox loaded on %s in %.1f s (%s)", self.device, time.monotonic() - started, source)
        self._info = EngineInfo(self.name, self.device, self.tts.chatterbox_model, source, tuple(notes))
        return self._info

    def _load_model(self, ChatterboxTTS):
        spec = self.tts.chatterbox_model
        directory, source = weights.resolve_local(self.settings)
        if directory is None and weights.is_local_spec(spec):
            raise FatalEngineError(f"Chatterbox weights: {source}")
        if directory is not None:
            return ChatterboxTTS.from_local(directory, self.device), source
        if self.settings.models.offline:
            raise FatalEngineError(f"{weights.NOT_OFFLINE}: {source} and models.offline = true")
        reachable, why = weights.hub_reachable()
        if not reachable:
            raise FatalEngineError(f"{weights.NOT_OFFLINE}: {source} and the hub is {why}")
        try:
            if spec == weights.DEFAULT_REPO:
                return ChatterboxTTS.from_pretrained(self.device), f"hub {spec}"
            return ChatterboxTTS.from_local(weights.download(spec, log.info), self.device), f"hub {spec}"
        except Exception as exc:
            if _is_oom(exc):
                raise
            # Typically the hub is unreachable and nothing is cached: hf_hub_download
            # raises one of several error types, all of which mean "no weights here".
            raise FatalEngineError(f"{weights.NOT_OFFLINE}: could not get {spec} from the hub "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc

    def _bound_speech_tokens(self, t3) -> None:
        """Make tts.max_speech_tokens the limit on speech tokens per sentence.

        chatterbox 0.1.7's `generate()` calls `t3.inference(..., max_new_tokens=1000)` with
        the 1000 hard-coded (an upstream TODO) and no parameter to change it. 1000 tokens
        is 40 s of audio; a sentence that never emits the stop token (hallucination, or
        random test weights) would then run for minutes on a CPU. Wrapping this instance's
        bound method is the narrowest fix: nothing global is patched and the rest of
        generate() is untouched. The configured limit replaces the 1000 (T3's position
        table allows up to 4096).
        """
        original = t3.inference
        engine = self

        @functools.wraps(original)
        def inference(*args, **kwargs):
            kwargs["max_new_tokens"] = engine._token_limit     # instead of upstream's 1000
            tokens = original(*args, **kwargs)
            engine.last_speech_tokens.append(int(tokens.shape[-1]))
            return tokens

        t3.inference = inference

    # ---- the voice -----------------------------------------------------------------
    def use_voice(self, voice: str | os.PathLike | None) -> str:
        """Speak with a reference clip (conditionals from the disk cache when there), or
        with the model's built-in voice for None / "". Returns a note for EngineInfo."""
        if self.model is None:
            raise FatalEngineError("ChatterboxEngine.use_voice() called before load()")
        with self._lock:                      # never swap conditionals mid-sentence
            note = self._use_voice(voice)
            self._default_conds = self.model.conds
            return note

    def _use_voice(self, voice) -> str:
        if not voice:
            if self._builtin_conds is None:
                raise FatalEngineError("this Chatterbox model has no built-in voice (conds.pt): "
                                       "set tts.voice to a reference clip")
            self.model.conds, self.conds_source = self._builtin_conds, "builtin"
            return "voice: built-in"
        path = Path(voice).expanduser()
        if not path.is_file():
            if self._builtin_conds is None:
                raise FatalEngineError(f"reference voice {path} (tts.voice) does not exist and the "
                                       "model has no built-in voice")
            log.warning("reference voice %s (tts.voice) does not exist; using the built-in voice", path)
            self.model.conds, self.conds_source = self._builtin_conds, "builtin"
            return f"voice: built-in ({path} not found)"
        self.model.conds, self.conds_source = self._voice_conditionals(path)
        return f"voice: {path} ({self.conds_source})"

    def voice_cache_path(self, clip: Path, cache_dir: Path | None = None) -> Path:
        """Cache file for a clip's conditionals: keyed by its content, the exaggeration and
        the model (conditionals come from the model's own encoders). A named voice keeps
        them in its own folder (cache_dir), so removing the voice removes them."""
        st = clip.stat()
        key = (str(clip.resolve()), st.st_size, st.st_mtime_ns)
        digest = self._digests.get(key)
        if digest is None:   # hash the clip once per version of it, not on every reply
            digest = self._digests[key] = hashlib.sha256(clip.read_bytes()).hexdigest()[:24]
        model_key = hashlib.sha256(self._model_identity().encode()).hexdigest()[:12]
        name = f"{digest}-x{self.tts.exaggeration:.3f}-{model_key}.pt"
        return (cache_dir or models_dir(self.settings) / "chatterbox" / "voices") / name

    def _model_identity(self) -> str:
        directory, _ = weights.resolve_local(self.settings)
        if directory is None:
            return self.tts.chatterbox_model
        ve = directory / "ve.safetensors"
        st = ve.stat()
        return f"{directory.resolve()}:{st.st_size}:{st.st_mtime_ns}"

    def _voice_conditionals(self, clip: Path, cache_dir: Path | None = None):
        from chatterbox.tts import Conditionals

        cache = self.voice_cache_path(clip, cache_dir)
        if cache.is_file():
            try:
                return Conditionals.load(cache, map_location=self.device).to(self.device), "cache"
            except Exception as exc:  # noqa: BLE001 - a damaged cache file is just recomputed
                log.warning("voice cache %s unreadable (%s); recomputing", cache, exc)
        import torch

        started = time.monotonic()
        try:
            with torch.no_grad():             # upstream builds them with autograd on
                self.model.prepare_conditionals(str(clip), exaggeration=self.tts.exaggeration)
        except Exception as exc:
            if _is_oom(exc):
                raise
            raise FatalEngineError(f"reference voice {clip} could not be used: {exc}") from exc
        log.info("chatterbox: prepared voice %s in %.1f s", clip, time.monotonic() - started)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        self.model.conds.save(tmp)
        os.replace(tmp, cache)                    # atomic: a crash never leaves half a file
        return self.model.conds, "computed"

    # ---- speaking ------------------------------------------------------------------
    @property
    def max_sentence_chars(self) -> int:
        """Sentences short enough that their speech fits in the token cap."""
        seconds = self._token_limit / TOKENS_PER_SECOND
        return int(min(200, max(40, seconds * CHARS_PER_SECOND)))

    def warmup(self) -> None:
        """One tiny generation, so the first reply does not pay for lazy initialisation."""
        saved, self._token_limit = self._token_limit, min(self._token_limit, WARMUP_TOKENS)
        try:
            for _ in self.synthesize("Ready."):
                pass
        finally:
            self._token_limit = saved

    def style_conditionals(self, style: VoiceStyle):
        """The conditionals for a reply: the named voice's clip (from memory, the disk cache,
        or computed once), or the configured voice. A clip that cannot be used never fails
        the reply: the configured voice speaks and voice_note says why."""
        self.voice_note = ""
        if style.clip is None:
            return self._default_conds
        try:
            key = self.voice_cache_path(style.clip, style.cache_dir)
        except OSError as exc:
            self.voice_note = f"voice {style.voice or style.clip}: clip unreadable ({exc.strerror}); default voice used"
            log.warning("chatterbox: %s", self.voice_note)
            return self._default_conds
        if key in self._voices:
            self.conds_source = "memory"
            return self._voices[key]
        with self._lock:
            try:
                conds, self.conds_source = self._voice_conditionals(style.clip, style.cache_dir)
            except FatalEngineError as exc:
                self.voice_note = f"voice {style.voice or style.clip} unusable ({exc}); default voice used"
                log.warning("chatterbox: %s", self.voice_note)
                return self._default_conds
            finally:
                self.model.conds = self._default_conds
        while len(self._voices) >= VOICES_IN_MEMORY:
            self._voices.pop(next(iter(self._voices)))
        self._voices[key] = conds
        return conds

    def synthesize(self, text: str, style: VoiceStyle = PLAIN) -> Iterator[SpeechChunk]:
        if self.model is None:
            raise FatalEngineError("ChatterboxEngine.synthesize() called before load()")
        from chatterbox.tts import punc_norm

        self.last_speech_tokens = []
        conds = self.style_conditionals(style)
        exaggeration = self.tts.exaggeration if style.exaggeration is None else style.exaggeration
        try:
            for sentence in split_sentences(speakable(text), self.max_sentence_chars):
                # generate() applies punc_norm too; normalising here (and re-joining the spaces
                # it can leave doubled) makes chunk.text exactly what the model reads.
                spoken = " ".join(punc_norm(sentence).split())
                audio = self._generate(spoken, conds, exaggeration)
                audio = effects.apply(audio, self.sample_rate, style.speed, style.pitch)
                yield SpeechChunk(audio=audio, sample_rate=self.sample_rate, text=spoken)
        finally:
            if conds is not self._default_conds:   # a named voice lasts one reply
                with self._lock:
                    self.model.conds = self._default_conds

    def _generate(self, text: str, conds=None, exaggeration: float | None = None) -> np.ndarray:
        import torch

        try:
            with self._lock, torch.inference_mode():
                if conds is not None:
                    self.model.conds = conds
                wav = self.model.generate(text, exaggeration=self.tts.exaggeration if exaggeration is None
                                          else exaggeration,
                                          cfg_weight=self.tts.cfg_weight,
                                          temperature=self.tts.temperature)
        except Exception as exc:
            if _is_oom(exc):
                self._release()
                raise OutOfMemory(f"Chatterbox ran out of memory on {self.device}: {exc}") from exc
            raise
        audio = wav.detach().to("cpu", torch.float32).numpy().reshape(-1)
        return np.clip(audio, -1.0, 1.0)

    def _release(self) -> None:
        """Free cached GPU blocks so recovery can retry or move to the CPU."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
