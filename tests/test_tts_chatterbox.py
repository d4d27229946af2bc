"""ChatterboxEngine through the real chatterbox code (from_local + generate) on a checkpoint
of the real architecture with random weights (tests/support/chatterbox_random.py).

The weights are random, so the audio is noise: these tests check the plumbing (loading,
token cap, sentence chunks, punctuation, voice conditionals and their cache), not speech.
"""
import time

import numpy as np
import pytest

pytest.importorskip("chatterbox", reason="chatterbox-tts is not installed (scripts/setup.sh)")

from support.chatterbox_random import checkpoint, shrunk_t3, write_voice

from voiced.config import ModelsSettings, Settings, TtsSettings
from voiced.engines.base import FatalEngineError, OutOfMemory, TextToSpeech
from voiced.engines.tts_chatterbox import ChatterboxEngine

MAX_TOKENS = 20                  # 0.8 s of speech at most: keeps S3Gen cheap on a CPU
SAMPLES_PER_TOKEN = 24_000 // 25


@pytest.fixture(scope="module")
def ckpt():
    started = time.monotonic()
    directory, info = checkpoint()
    how = "cached" if info["cached"] else f"built in {info['build_s']:.1f} s"
    print(f"\nchatterbox random checkpoint: {directory} ({how}; "
          f"got it in {time.monotonic() - started:.1f} s)")
    return directory


def make_settings(ckpt_dir, models_dir, **tts):
    tts = TtsSettings(engine="chatterbox", device="cpu", chatterbox_model=str(ckpt_dir),
                      max_speech_tokens=MAX_TOKENS, **tts)
    return Settings(tts=tts, models=ModelsSettings(dir=str(models_dir), offline=True))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    # One intra-op thread: on a small CI box shared with other jobs, two OpenMP threads
    # spin-wait on each other at every op (S3Gen has thousands) and one generation was
    # seen to take 3 s or 200 s depending on the neighbours; one thread takes ~5 s.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def engine(ckpt, tmp_path_factory):
    settings = make_settings(ckpt, tmp_path_factory.mktemp("models"))
    eng = ChatterboxEngine(settings.tts, settings)
    started = time.monotonic()
    with shrunk_t3():
        info = eng.load()
    print(f"\nchatterbox load: {time.monotonic() - started:.1f} s; {info}")
    return eng


def check_audio(chunk, engine):
    audio = chunk.audio
    assert chunk.sample_rate == engine.sample_rate == 24_000
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all()
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3, "silent output"
    assert np.abs(audio).max() <= 1.0
    # T3 stops at the cap at the latest, so the audio cannot be longer than the cap allows.
    assert 0.1 * 24_000 <= audio.size <= (MAX_TOKENS + 2) * SAMPLES_PER_TOKEN


def test_generates_capped_float_audio_one_chunk_per_sentence(engine):
    assert isinstance(engine, TextToSpeech)
    heard = []
    tokenizer = engine.model.tokenizer
    real_text_to_tokens = tokenizer.text_to_tokens

    def recording(text):                   # observe what the real tokenizer is given
        heard.append(text)
        return real_text_to_tokens(text)

    tokenizer.text_to_tokens = recording
    try:
        started = time.monotonic()
        chunks = list(engine.synthesize("hello there; how are you… **fine**, I hope! Two."))
        elapsed = time.monotonic() - started
    finally:
        del tokenizer.text_to_tokens
    # punc_norm: capital first letter, ";" and "…" replaced; markdown gone. That is the
    # text the model read, one generation per sentence.
    assert [c.text for c in chunks] == ["Hello there, how are you, fine, I hope!", "Two."]
    assert heard == [c.text for c in chunks]
    for chunk in chunks:
        check_audio(chunk, engine)
    assert len(engine.last_speech_tokens) == 2 and max(engine.last_speech_tokens) <= MAX_TOKENS
    audio_s = sum(c.audio.size for c in chunks) / 24_000
    print(f"\nchatterbox generate: {elapsed:.1f} s for {engine.last_speech_tokens} tokens, "
          f"{audio_s:.2f} s of audio")


def test_reference_voice_is_prepared_once_and_cached(engine, tmp_path):
    clip = write_voice(tmp_path / "ref.wav", seconds=2.0, f0=180.0, seed=7)
    builtin = engine.model.conds

    started = time.monotonic()
    note = engine.use_voice(str(clip))
    first = time.monotonic() - started
    assert engine.conds_source == "computed", note
    cache_file = engine.voice_cache_path(clip)
    assert cache_file.is_file()
    computed = engine.model.conds
    assert computed is not builtin

    calls = []
    real_prepare = engine.model.prepare_conditionals
    engine.model.prepare_conditionals = lambda *a, **k: calls.append(a) or real_prepare(*a, **k)
    try:
        started = time.monotonic()
        engine.use_voice(str(clip))
        second = time.monotonic() - started
    finally:
        del engine.model.prepare_conditionals
    assert engine.conds_source == "cache" and calls == []
    assert second < first / 3, (first, second)
    cached = engine.model.conds
    assert cached.t3.speaker_emb.shape == (1, 256)
    for key in ("prompt_token", "prompt_feat", "embedding"):
        assert np.allclose(cached.gen[key].numpy(), computed.gen[key].numpy())
    print(f"\nreference voice conditionals: computed in {first:.2f} s, from cache in {second:.3f} s")

    chunk, = engine.synthesize("Cloned voice.")
    check_audio(chunk, engine)
    assert engine.model.conds is cached

    # another exaggeration is another cache entry (the brief's key: content + exaggeration)
    other = make_settings(engine.tts.chatterbox_model, engine.settings.models.dir, exaggeration=0.9)
    assert ChatterboxEngine(other.tts, other).voice_cache_path(clip) != cache_file

    engine.use_voice(None)
    assert engine.model.conds is builtin and engine.conds_source == "builtin"


def test_missing_voice_file_falls_back_to_builtin(engine, tmp_path):
    note = engine.use_voice(str(tmp_path / "nope.wav"))
    assert engine.conds_source == "builtin" and "not found" in note


def test_cuda_out_of_memory_becomes_engine_out_of_memory(engine):
    import torch

    def fault(*args, **kwargs):            # the real exception type and message
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    engine.model.generate = fault
    try:
        with pytest.raises(OutOfMemory, match="Tried to allocate"):
            list(engine.synthesize("Hello."))
    finally:
        del engine.model.generate


def test_missing_weights_is_fatal_with_a_clear_message(tmp_path):
    settings = make_settings(tmp_path / "no-such-dir", tmp_path)
    with pytest.raises(FatalEngineError, match="does not exist"):
        ChatterboxEngine(settings.tts, settings).load()
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "ve.safetensors").write_bytes(b"")
    settings = make_settings(tmp_path / "partial", tmp_path)
    with pytest.raises(FatalEngineError, match="lacks t3_cfg.safetensors"):
        ChatterboxEngine(settings.tts, settings).load()


def test_hub_id_offline_without_cache_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # an empty cache, whatever this machine has downloaded
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = Settings(tts=TtsSettings(device="cpu"), models=ModelsSettings(dir=str(tmp_path), offline=True))
    with pytest.raises(FatalEngineError, match="not available offline"):
        ChatterboxEngine(settings.tts, settings).load()


def test_model_status(ckpt, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from voiced.models import chatterbox as weights

    local = weights.status(make_settings(ckpt, tmp_path))
    assert local.ready and local.model == str(ckpt) and local.source == "local directory"

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    offline = Settings(models=ModelsSettings(dir=str(tmp_path), offline=True))
    hub = weights.status(offline)
    assert not hub.ready and hub.model == "ResembleAI/chatterbox"
    assert hub.detail.startswith("Chatterbox weights not available offline; TTS will use the fallback engine")
    messages = []
    fetched = weights.fetch(offline, messages.append)      # offline: no network attempt
    assert not fetched.ready and any("not available offline" in m for m in messages)


def test_named_voice_is_cloned_and_its_conditionals_cached_in_its_folder(engine, tmp_path):
    """A stored voice (voiced.voices) through synthesize(text, style): conditionals computed
    once into the voice's own folder, then loaded from there, then kept in memory."""
    import io
    from pathlib import Path

    import soundfile as sf

    from voiced.voices import VoiceStore

    speech, rate = sf.read(Path(__file__).parent / "data" / "jfk_16k.flac", dtype="float32")
    clip = io.BytesIO()
    sf.write(clip, speech[: 5 * rate], rate, format="WAV")   # 5 s: S3Gen's cost grows with the prompt
    store = VoiceStore(tmp_path / "voices", engine.settings)
    store.add("jfk", clip.getvalue())
    style = store.style("jfk", speed=1.25)
    default = engine.model.conds

    started = time.monotonic()
    conds = engine.style_conditionals(style)
    computed_s = time.monotonic() - started
    assert engine.conds_source == "computed" and conds is not default
    cached = list(store.folder("jfk").glob("*.pt"))
    assert len(cached) == 1 and cached[0] == engine.voice_cache_path(style.clip, style.cache_dir)

    engine._voices.clear()                      # as after a restart: only the disk cache is left
    calls = []
    real_prepare = engine.model.prepare_conditionals
    engine.model.prepare_conditionals = lambda *a, **k: calls.append(a) or real_prepare(*a, **k)
    try:
        started = time.monotonic()
        engine.style_conditionals(style)
        cache_s = time.monotonic() - started
        assert engine.conds_source == "cache" and calls == []
        started = time.monotonic()
        again = engine.style_conditionals(style)
        memory_s = time.monotonic() - started
        assert engine.conds_source == "memory" and calls == []
    finally:
        del engine.model.prepare_conditionals
    print(f"\nnamed voice conditionals: computed {computed_s:.2f} s, from the disk cache {cache_s * 1000:.0f} ms, "
          f"from memory {memory_s * 1000:.1f} ms")
    assert cache_s < computed_s / 3, (computed_s, cache_s)

    replies = engine.synthesize("Cloned voice.", style)
    check_audio(next(replies), engine)
    assert engine.model.conds is again            # the voice speaks this reply...
    replies.close()
    assert engine.model.conds is default          # ...and only this one

    store.remove("jfk")
    assert not cached[0].exists()                 # removing the voice removes its conditionals


def test_unusable_named_voice_falls_back_to_the_default_and_says_so(engine, tmp_path):
    from voiced.engines.base import VoiceStyle

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "reference.wav").write_bytes(b"RIFF not really a wav")
    default = engine.model.conds
    style = VoiceStyle(voice="broken", clip=broken / "reference.wav", cache_dir=broken)
    assert engine.style_conditionals(style) is default
    assert "voice broken unusable" in engine.voice_note and "default voice used" in engine.voice_note
    gone = VoiceStyle(voice="gone", clip=tmp_path / "gone.wav")
    assert engine.style_conditionals(gone) is default and "clip unreadable" in engine.voice_note
