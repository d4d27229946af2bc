"""Whisper speech-to-text through the transformers ASR pipeline.

Per call (audio up to 30 s): log-mel features -> encoder once -> one decoder step on the
start token gives the probability of Whisper's no-speech token; the pipeline decodes greedily
from the same encoder output. Above the threshold the transcript is dropped (Whisper otherwise
"hears" " you" or " . . ." in silence) unless its words were decoded confidently, as Whisper's
own rule has it (hallucination.no_speech; the log-probability is read in one teacher-forced
pass, only then). Longer audio goes through Whisper's own long-form decoding, ungated.

Language: forced ([stt] language = "en") on a multilingual model, or detected per request
("auto", or a list to choose from) from the language tokens' probabilities at that same first
decoder step (no extra pass); generate() is then told the language. The no-speech token is
read at that step too, before any language token: the gate is the same in every language.

Vocabulary ([stt] vocabulary, engines/vocabulary.py): `prompt_ids` for generate(); the gate's
step is read without it.
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
from voiced.engines.vocabulary import bias_prompt

log = logging.getLogger(__name__)

WINDOW_S = 30.0                          # Whisper's fixed input window
NO_SPEECH_TOKENS = ("<|nocaptions|>", "<|nospeech|>")   # the name changed in large-v3
WARMUP_TOKENS = 4


class _DropLengthWarning(logging.Filter):
    # Whisper's generate() fills max_length=448 for its inner call, so every call with
    # max_new_tokens logs "Both max_new_tokens and max_length seem to have been set".
    def filter(self, record: logging.LogRecord) -> bool:
        return "seem to have been set" not in record.getMessage()


_LENGTH_FILTER = _DropLengthWarning()


class WhisperSTT:
    name = "whisper"

    def __init__(self, stt: SttSettings, settings: Settings | None = None):
        self.stt = stt
        self.settings = settings if settings is not None else Settings(stt=stt)
        self._pipe = None
        self._torch = None
        self._gen_kwargs: dict = {}
        self._no_speech_id: int | None = None
        self._multilingual = False
        self._forced: str | None = None           # the forced language on a multilingual model
        self._language_ids: dict[str, int] = {}   # "de" -> the <|de|> token id
        self._prompt = ""
        self._lock = threading.Lock()   # one model, one call at a time
        self.info: EngineInfo | None = None

    # ------------------------------------------------------------------ loading

    def _device(self, torch) -> str:
        if self.stt.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.stt.device == "cuda" and not torch.cuda.is_available():
            raise FatalEngineError("stt.device = \"cuda\" but torch sees no CUDA device")
        return self.stt.device

    def load(self) -> EngineInfo:
        from voiced.models.whisper import resolve

        try:
            import torch
            from transformers import pipeline
        except ImportError as exc:
            raise MissingDependency(f"Whisper needs torch and transformers ({exc}); install voiced's dependencies") from exc
        self._torch = torch
        try:
            model, source, multilingual = resolve(self.settings)
        except FileNotFoundError as exc:
            raise FatalEngineError(str(exc)) from None
        device = self._device(torch)
        dtype = torch.float16 if device == "cuda" else torch.float32
        started = time.monotonic()
        try:
            pipe = pipeline("automatic-speech-recognition", model=model, device=device, dtype=dtype,
                            model_kwargs={"attn_implementation": "sdpa"})
        except torch.cuda.OutOfMemoryError as exc:
            raise OutOfMemory(f"out of GPU memory loading Whisper {model}") from exc
        except (OSError, ValueError) as exc:
            # Missing or partial weights, or the hub unreachable for a model never fetched.
            raise FatalEngineError(f"cannot load Whisper weights {model} ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}): run `voiced models fetch`") from exc
        pipe.model.eval()
        self._pipe = pipe
        tokenizer = pipe.tokenizer
        unk = tokenizer.unk_token_id
        ids = [tokenizer.convert_tokens_to_ids(t) for t in NO_SPEECH_TOKENS]
        self._no_speech_id = next((i for i in ids if i is not None and i != unk), None)

        notes = []
        self._gen_kwargs = {"num_beams": 1, "do_sample": False, "max_new_tokens": self.stt.max_new_tokens}
        language = self.stt.forced_language or "auto"
        # The loaded generation config knows; resolve() only guessed for a hub id.
        multilingual = bool(getattr(pipe.model.generation_config, "is_multilingual", multilingual))
        self._multilingual, self._forced = multilingual, None
        lang_to_id = getattr(pipe.model.generation_config, "lang_to_id", None) or {}
        self._language_ids = {token[2:-2]: i for token, i in lang_to_id.items()}
        if multilingual and language not in ("", "auto"):
            # Also skips Whisper's per-call language detection pass.
            self._forced = language
            self._gen_kwargs.update(language=language, task="transcribe")
            notes.append(f"multilingual model: language forced to {language!r}, task transcribe")
        elif multilingual:
            self._gen_kwargs.update(task="transcribe")
            allowed = self.stt.allowed_languages
            notes.append("multilingual model: language detected per request"
                         + (f" among {', '.join(allowed)}" if allowed else ""))
        self._prompt = bias_prompt(self.settings, lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
        if self._prompt:
            self._gen_kwargs["prompt_ids"] = torch.as_tensor(
                tokenizer.get_prompt_ids(self._prompt, return_tensors="np"), device=device)
            notes.append(f"vocabulary prompt: {self._prompt!r}")
        if self._no_speech_id is None:
            notes.append("no no-speech token in this tokenizer: silence gate off")
        logging.getLogger("transformers.generation.utils").addFilter(_LENGTH_FILTER)   # a no-op if present
        elapsed = time.monotonic() - started
        log.info("whisper: loaded %s on %s in %.1f s (%s)", model, device, elapsed, source)
        self.info = EngineInfo(self.name, device, model, source, tuple(notes))
        return self.info

    @property
    def languages(self) -> tuple[str, ...]:
        """What this model can transcribe: Whisper's codes, ("en",) for an English-only model."""
        if self._pipe is None:
            return ()
        return tuple(self._language_ids) if self._multilingual and self._language_ids else ("en",)

    def warmup(self) -> None:
        """One short decode so the first real request does not pay for lazy initialisation."""
        pipe = self._require()
        audio = np.zeros(STT_RATE, dtype=np.float32)
        with self._lock, self._torch.inference_mode():
            self._guard(lambda: pipe(audio, generate_kwargs={**self._gen_kwargs, "max_new_tokens": WARMUP_TOKENS}))

    # ------------------------------------------------------------------ transcribing

    def _require(self):
        if self._pipe is None:
            raise FatalEngineError("WhisperSTT.transcribe called before load()")
        return self._pipe

    def _guard(self, call):
        torch = self._torch
        try:
            return call()
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()   # give back what the failed call held before anyone retries
            raise OutOfMemory("out of GPU memory in Whisper") from exc
        except RuntimeError as exc:
            raise EngineError(f"Whisper failed: {exc}") from exc

    def _encode(self, audio: np.ndarray):
        pipe = self._pipe
        features = pipe.feature_extractor(audio, sampling_rate=STT_RATE, return_tensors="pt").input_features
        features = features.to(pipe.model.device, pipe.model.dtype)
        return pipe.model.get_encoder()(features)

    def _first_step(self, encoder_output):
        """The probabilities after the start token, as openai's decoder reads them: of the
        no-speech token (None without one) and of each language token."""
        model = self._pipe.model
        torch = self._torch
        start = torch.tensor([[model.generation_config.decoder_start_token_id]], device=model.device)
        hidden = model.get_decoder()(input_ids=start, encoder_hidden_states=encoder_output.last_hidden_state,
                                     use_cache=False).last_hidden_state
        logits = model.proj_out(hidden[:, -1]).float()
        probs = torch.softmax(logits, dim=-1)[0]
        p_none = None if self._no_speech_id is None else float(probs[self._no_speech_id])
        return p_none, probs

    def _request_language(self, language: str | None) -> str | None:
        return request_language(self.name, language, self.languages, self._multilingual, self._forced)

    def _avg_logprob(self, encoder_output, text: str, language: str) -> float:
        """The decoder's average log-probability of `text` (and the end token) after the task
        prefix, read in one teacher-forced pass, as Whisper's avg_logprob."""
        torch, pipe = self._torch, self._pipe
        tokenizer, model = pipe.tokenizer, pipe.model
        tokenizer.set_prefix_tokens(language=language if self._multilingual else None,
                                    task="transcribe" if self._multilingual else None, predict_timestamps=False)
        prefix = tokenizer.prefix_tokens
        sequence = prefix + tokenizer(" " + text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        ids = torch.tensor([sequence[:-1]], device=model.device)
        logits = model(encoder_outputs=encoder_output, decoder_input_ids=ids).logits[0].float()
        targets = torch.tensor(sequence[len(prefix):], device=model.device)
        logprobs = torch.log_softmax(logits[len(prefix) - 1:], dim=-1).gather(1, targets[:, None])
        return float(logprobs.mean())

    def _pick_language(self, probs, forced: str | None) -> tuple[str, float | None]:
        """The forced language, or the most probable (among [stt] language's list if any)."""
        if forced is not None:
            return forced, None
        if not self._multilingual or not self._language_ids:
            return "en", None
        allowed = [c for c in self.stt.allowed_languages if c in self._language_ids]
        codes = allowed or list(self._language_ids)
        ids = self._torch.tensor([self._language_ids[c] for c in codes], device=probs.device)
        best = int(probs[ids].argmax())
        return codes[best], float(probs[ids[best]])

    def transcribe(self, audio: np.ndarray, expect: str = "", language: str = "") -> Transcript:
        """`expect`: what this request is likely to say ("Stop, cancel."), a prompt in place of
        the vocabulary's; a transcript that repeats it is not taken for an echo. `language`:
        this request's language, if its sender knows it (else [stt] language decides)."""
        pipe = self._require()
        forced = self._request_language(language)
        gen_kwargs = self._gen_kwargs
        if expect:
            gen_kwargs = {**gen_kwargs, "prompt_ids": self._torch.as_tensor(
                pipe.tokenizer.get_prompt_ids(expect, return_tensors="np"), device=pipe.model.device)}
        audio = mono_audio(audio)
        audio_s = audio.size / STT_RATE
        started = time.monotonic()
        if audio.size == 0:
            return Transcript("", 0.0, 0.0, rejected="empty audio")
        with self._lock, self._torch.inference_mode():
            if audio_s <= WINDOW_S:
                encoded = self._guard(lambda: self._encode(audio))
                p_none, probs = self._guard(lambda: self._first_step(encoded))
                language, p_language = self._pick_language(probs, forced)
                kwargs = {**gen_kwargs, "encoder_outputs": encoded}
                if self._multilingual:
                    kwargs["language"] = language
                result = self._guard(lambda: pipe(audio, generate_kwargs=kwargs))
                if p_none is not None and p_none >= self.stt.no_speech_threshold:
                    # Unsure there is speech: how confidently the words were decoded decides.
                    raw = result["text"].strip()
                    logprob = self._guard(lambda: self._avg_logprob(encoded, raw, language)) if raw else None
                    silent = no_speech(p_none, logprob, self.stt.no_speech_threshold)
                    if silent:
                        return Transcript("", time.monotonic() - started, audio_s, p_none, raw_text=raw,
                                          language=language, language_probability=p_language, rejected=silent)
            else:
                p_none = None
                language, p_language = forced or ("en" if not self._multilingual else ""), None
                if not language:
                    # Detected on the first 30 s, as Whisper's own long-form decoding would.
                    encoded = self._guard(lambda: self._encode(audio[:int(WINDOW_S * STT_RATE)]))
                    language, p_language = self._pick_language(self._guard(lambda: self._first_step(encoded))[1], None)
                kwargs = {**gen_kwargs, **({"language": language} if self._multilingual else {})}
                # Long-form decoding predicts timestamps to move its 30 s window along.
                result = self._guard(lambda: pipe(audio, return_timestamps=True, generate_kwargs=kwargs))
        raw = result["text"].strip()
        elapsed = time.monotonic() - started
        return filtered_transcript(raw, elapsed, audio_s, p_none, language, p_language, "" if expect else self._prompt)
