"""Whisper speech-to-text through faster-whisper (CTranslate2): int8 on a CPU, float16 on CUDA.

Same contract as stt_whisper.py: greedy decoding, bounded tokens, language forced on a
multilingual model, and the same no-speech gate: CTranslate2 reports the probability of the
no-speech token at the first decoder step, in the same pass that decodes, and the decode's
average log-probability; a transcript whose probability is over the threshold is dropped unless
it was decoded confidently (hallucination.no_speech, Whisper's own rule).
Longer audio than one 30 s window is decoded window by window, and faster-whisper itself skips
the silent windows.

A short request does not need a 30 s window: Whisper's encoder (most of the cost on a CPU)
runs on the padded 30 s whatever the audio. CTranslate2 accepts fewer frames, so a request
under [stt] short_window_s is encoded in max(short_window_s, audio + 1 s) and decoded
directly (greedy, the same suppressed tokens and no-speech probability as faster-whisper's
own path). Windows much shorter than ~10 s make Whisper repeat the request over and over.

Language: forced ([stt] language = "en") on a multilingual model, or detected per request
("auto", or a list to choose from). Detection reads CTranslate2's language probabilities from the
encoder output the decode then uses (encoded once): a request of one window goes through the
direct path above (a guess under DETECT_SURE on the short window is made again on the full 30 s
window, which the decode then uses); longer audio is detected on its first 30 s by
faster-whisper. The no-speech probability is that of the start-of-transcript step, before the
language token, so the gate is the same in every language.

Vocabulary ([stt] vocabulary, engines/vocabulary.py): a prompt after <|startofprev|>, as
faster-whisper's `hotwords` does; the no-speech gate is then read without it (a prompt makes
Whisper less sure there is nothing to hear). A caller that knows what it expects (the
stop word while a timer rings) passes `expect`, a prompt for that one request instead.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from voiced.config import Settings, SttSettings
from voiced.engines.base import (
    STT_RATE,
    EngineError,
    EngineInfo,
    FatalEngineError,
    MissingDependency,
    OutOfMemory,
    Transcript,
    mono_audio,
    request_language,
)
from voiced.engines.hallucination import filtered_transcript, no_speech
from voiced.engines.threads import cpu_threads
from voiced.engines.vocabulary import bias_prompt

log = logging.getLogger(__name__)

WINDOW_S = 30.0
FRAMES_PER_S = 100     # Whisper's log-mel hop: 10 ms
WARMUP_TOKENS = 4
# A language detected on a short window with less than this is detected again on the full 30 s
# window (accuracy set, 73 clean requests >= 1.5 s: short window alone 58 right, always the full
# window 63 at 4.7x the encoder time, this rule 63 with the full window for 30, mostly espeak-ng's
# unintelligible voices).
DETECT_SURE = 0.7
COMPUTE_TYPES = {"cuda": "float16", "cpu": "int8"}


def _as_engine_error(exc: Exception) -> EngineError:
    """CTranslate2 raises RuntimeError("CUDA failed with error out of memory") and the like;
    engines.errors.classify reads these types and words."""
    text = str(exc)
    if "out of memory" in text.lower():
        return OutOfMemory(f"out of GPU memory in faster-whisper: {text}")
    if "cuda" in text.lower():
        return EngineError(f"faster-whisper CUDA error: {text}")
    return EngineError(f"faster-whisper failed: {text}")


class FasterWhisperSTT:
    name = "faster-whisper"

    def __init__(self, stt: SttSettings, settings: Settings | None = None):
        self.stt = stt
        self.settings = settings if settings is not None else Settings(stt=stt)
        self._model = None
        self._language: str | None = None
        self._lock = threading.Lock()   # one model, one call at a time
        self._tokenizers: dict[str, object] = {}
        self._prompt = ""                  # the vocabulary prompt, "" = none
        self._prompt_tokens: list[int] = []
        self.info: EngineInfo | None = None

    def _device(self, ctranslate2) -> str:
        gpus = ctranslate2.get_cuda_device_count()
        if self.stt.device == "auto":
            return "cuda" if gpus > 0 else "cpu"
        if self.stt.device == "cuda" and gpus == 0:
            raise FatalEngineError("stt.device = \"cuda\" but CTranslate2 sees no CUDA device")
        return self.stt.device

    def load(self) -> EngineInfo:
        from voiced.models.whisper_fast import resolve

        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependency(f"stt.engine faster-whisper needs the faster-whisper package ({exc}); "
                                    "pip install faster-whisper") from exc
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)   # it logs every call at INFO
        try:
            model, source = resolve(self.settings)
        except FileNotFoundError as exc:
            raise FatalEngineError(str(exc)) from None
        device = self._device(ctranslate2)
        started = time.monotonic()
        try:
            self._model = WhisperModel(model, device=device, compute_type=COMPUTE_TYPES[device],
                                       cpu_threads=cpu_threads(self.settings),
                                       local_files_only=self.settings.models.offline)
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise OutOfMemory(f"out of GPU memory loading faster-whisper {model}") from exc
            raise FatalEngineError(f"cannot load faster-whisper weights {model} ({exc}): "
                                   "run `voiced models fetch`") from exc
        except (OSError, ValueError) as exc:
            # Missing or partial weights, or the hub unreachable for a model never fetched.
            raise FatalEngineError(f"cannot load faster-whisper weights {model} ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}): run `voiced models fetch`") from exc
        notes = [f"CTranslate2 {COMPUTE_TYPES[device]}"]
        language = self.stt.forced_language or "auto"
        self._language = None
        if self._model.model.is_multilingual and language not in ("", "auto"):
            self._language = language     # also skips the per-call language detection pass
            notes.append(f"multilingual model: language forced to {language!r}, task transcribe")
        elif self._model.model.is_multilingual:
            allowed = self.stt.allowed_languages
            notes.append("multilingual model: language detected per request"
                         + (f" among {', '.join(allowed)}" if allowed else ""))
        tokenizer = self._tokenizer(self._language or "en")
        self._prompt = bias_prompt(self.settings, lambda text: len(tokenizer.encode(text)))
        self._prompt_tokens = tokenizer.encode(" " + self._prompt) if self._prompt else []
        if self._prompt:
            notes.append(f"vocabulary prompt: {self._prompt!r}")
        log.info("faster-whisper: loaded %s on %s in %.1f s (%s)", model, device, time.monotonic() - started, source)
        self.info = EngineInfo(self.name, device, model, source, tuple(notes))
        return self.info

    def _require(self):
        if self._model is None:
            raise FatalEngineError("FasterWhisperSTT.transcribe called before load()")
        return self._model

    def _decode(self, audio: np.ndarray, max_new_tokens: int, long_form: bool, language: str | None = None,
                prompt: str | None = None) -> list:
        try:
            return self._segments(audio, max_new_tokens, long_form, language,
                                  self._prompt if prompt is None else prompt)
        except RuntimeError as exc:
            raise _as_engine_error(exc) from exc

    @property
    def languages(self) -> tuple[str, ...]:
        """What this model can transcribe: Whisper's codes, ("en",) for an English-only model."""
        return tuple(self._model.supported_languages) if self._model is not None else ()

    @property
    def multilingual(self) -> bool:
        return bool(self._require().model.is_multilingual)

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            model = self._require()
            self._tokenizers[language] = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                                                   task="transcribe", language=language)
        return self._tokenizers[language]

    def _pick_language(self, probabilities: list[tuple[str, float]]) -> tuple[str, float]:
        """The most probable language, among [stt] language's list when there is one.
        `probabilities`: (code, p), most probable first."""
        allowed = self.stt.allowed_languages
        ranked = [(code, p) for code, p in probabilities if not allowed or code in allowed]
        code, p = (ranked or probabilities)[0]
        return code, float(p)

    def _request_language(self, language: str | None) -> str | None:
        return request_language(self.name, language, self.languages, self.multilingual, self._language)

    def _detect(self, encoded, forced: str | None) -> tuple[str, float | None]:
        """(language, probability) for a request: the forced one (None), or Whisper's."""
        if forced is not None:
            return forced, None
        if not self.multilingual:
            return "en", None
        results = self._require().model.detect_language(encoded)[0]   # [("<|de|>", p), ...], sorted
        return self._pick_language([(token[2:-2], p) for token, p in results])

    def _short_window(self, audio: np.ndarray, max_new_tokens: int, window_s: float | None = None,
                      prompt_tokens: list[int] | None = None,
                      forced: str | None = None) -> tuple[str, float, float, str, float | None]:
        """(text, no-speech probability, average log-probability of its tokens, language, its
        probability) of one request in a window
        of `window_s` ([stt] short_window_s, at least the audio + 1 s, at most 30 s), after
        `prompt_tokens` (the vocabulary prompt's by default)."""
        import ctranslate2
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._require()
        window_s = self.stt.short_window_s if window_s is None else window_s
        features = model.feature_extractor(audio)            # [80, frames], not padded
        full = int(WINDOW_S * FRAMES_PER_S)

        def encode(frames: int):
            window = np.zeros((1, features.shape[0], frames), np.float32)
            used = min(frames, features.shape[-1])
            window[0, :, :used] = features[:, :used]
            return model.model.encode(ctranslate2.StorageView.from_array(window))

        frames = min(full, max(round(window_s * FRAMES_PER_S), features.shape[-1] + FRAMES_PER_S))
        encoded = encode(frames)
        language, p_language = self._detect(encoded, forced)
        if forced is None and frames < full and (p_language or 0.0) < DETECT_SURE:
            # Whisper learnt languages on 30 s windows: an unsure guess on a short one is asked
            # again on the full window, whose encoding the decode then uses.
            encoded = encode(full)
            language, p_language = self._detect(encoded, forced)
        tok = self._tokenizer(language)
        prompt = list(tok.sot_sequence) + [tok.no_timestamps]
        prompt_tokens = self._prompt_tokens if prompt_tokens is None else prompt_tokens
        context = [tok.sot_prev] + prompt_tokens if prompt_tokens else []
        result = model.model.generate(encoded, [context + prompt], beam_size=1,
                                      max_length=len(context) + len(prompt) + max_new_tokens,
                                      return_no_speech_prob=True, return_scores=True, suppress_blank=True,
                                      suppress_tokens=get_suppressed_tokens(tok, [-1]))[0]
        p_none = float(result.no_speech_prob)
        if context:
            # The gate reads the start-of-transcript step without the prompt (one decoder step).
            p_none = float(model.model.generate(encoded, [[tok.sot]], beam_size=1, max_length=2,
                                                return_no_speech_prob=True)[0].no_speech_prob)
        # The score is the sum of the tokens' log-probabilities over their count (length_penalty 1).
        return tok.decode(result.sequences_ids[0]).strip(), p_none, float(result.scores[0]), language, p_language

    def _long_form_language(self, audio: np.ndarray, forced: str | None) -> tuple[str, float | None]:
        """Detected on the first 30 s (faster-whisper encodes them once more for this)."""
        if forced is not None:
            return forced, None
        if not self.multilingual:
            return "en", None
        _code, _p, probabilities = self._require().detect_language(audio, language_detection_segments=1)
        return self._pick_language(probabilities)

    def _segments(self, audio: np.ndarray, max_new_tokens: int, long_form: bool,
                  language: str | None = None, prompt: str = "") -> list:
        segments, _info = self._require().transcribe(
            audio, language=language or self._language, task="transcribe", beam_size=1, best_of=1,
            hotwords=prompt or None,
            temperature=0.0, condition_on_previous_text=False, vad_filter=False,
            max_new_tokens=max_new_tokens, without_timestamps=not long_form,
            # One window: the gate below decides. Long-form: faster-whisper skips silent windows.
            no_speech_threshold=self.stt.no_speech_threshold if long_form else None,
            log_prob_threshold=-1.0 if long_form else None, compression_ratio_threshold=None)
        return list(segments)            # a generator: the decoding happens here

    def warmup(self) -> None:
        """One short decode so the first real request does not pay for lazy initialisation."""
        with self._lock:
            if self.stt.short_window_s > 1:   # the path spoken requests take
                self._short_window(np.zeros(STT_RATE, dtype=np.float32), WARMUP_TOKENS, forced=self._language)
            self._decode(np.zeros(STT_RATE, dtype=np.float32), WARMUP_TOKENS, long_form=False)

    def transcribe(self, audio: np.ndarray, expect: str = "", language: str = "") -> Transcript:
        """`expect`: what this request is likely to say ("Stop, cancel."), a prompt in place of
        the vocabulary's; a transcript that repeats it is not taken for an echo. `language`:
        this request's language, if its sender knows it (else [stt] language decides)."""
        self._require()
        audio = mono_audio(audio)
        audio_s = audio.size / STT_RATE
        started = time.monotonic()
        if audio.size == 0:
            return Transcript("", 0.0, 0.0, rejected="empty audio")
        long_form = audio_s > WINDOW_S
        # A request of one window goes through the direct path when it is short, when its
        # language is detected (from the same encoder output) or when there is a vocabulary
        # prompt (the gate then reads the no-speech probability without it).
        forced = self._request_language(language)
        detect = forced is None and self.multilingual
        short = audio_s < self.stt.short_window_s
        prompt = expect or self._prompt
        prompt_tokens = self._tokenizer("en").encode(" " + expect) if expect else self._prompt_tokens
        with self._lock:
            try:
                if not long_form and (short or detect or prompt_tokens):
                    raw, p_none, logprob, language, p_language = self._short_window(
                        audio, self.stt.max_new_tokens, None if short else WINDOW_S, prompt_tokens, forced)
                else:
                    language, p_language = self._long_form_language(audio, forced) if long_form else (forced or "en", None)
                    segments = self._decode(audio, self.stt.max_new_tokens, long_form, language, prompt)
                    raw = "".join(s.text for s in segments).strip()
                    p_none = None if long_form or not segments else float(segments[0].no_speech_prob)
                    logprob = None if long_form or not segments else float(segments[0].avg_logprob)
            except RuntimeError as exc:
                raise _as_engine_error(exc) from exc
        elapsed = time.monotonic() - started
        silent = no_speech(p_none, logprob, self.stt.no_speech_threshold)
        if silent:
            return Transcript("", elapsed, audio_s, p_none, raw_text=raw, language=language,
                              language_probability=p_language, rejected=silent)
        return filtered_transcript(raw, elapsed, audio_s, p_none, language, p_language, "" if expect else self._prompt)
