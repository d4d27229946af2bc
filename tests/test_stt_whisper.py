"""Whisper speech-to-text with the real weights: the CT2 -> transformers converter, fetching,
and the engine on human speech, synthetic speech, silence and noise."""
from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

from tests.fixtures_stt import (
    JFK_REFERENCE,
    SENTENCES,
    assert_hears_request,
    assert_rejects,
    jfk_audio,
    non_speech,
    wer,
)
from voiced.engines.base import FatalEngineError, SpeechToText
from voiced.models import whisper, whisper_ct2

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- CTranslate2 format, no weights needed

def write_ct2(path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """The writer from ctranslate2/specs/model_spec.py `_serialize`, for test inputs."""
    type_ids = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}

    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    out = [struct.pack("<I", 6), string("WhisperSpec"), struct.pack("<II", 3, len(variables))]
    for name, value in variables.items():
        out += [string(name), struct.pack("<B", value.ndim), struct.pack(f"<{value.ndim}I", *value.shape),
                struct.pack("<BI", type_ids[value.dtype.name], value.nbytes), value.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    out += [string(a) + string(t) for a, t in aliases.items()]
    path.write_bytes(b"".join(out))


def ct2_from_hf(state: dict[str, np.ndarray], n_enc: int, n_dec: int, heads: int):
    """Fuse a transformers Whisper state dict the way ctranslate2's WhisperLoader does."""
    v, s = {}, state

    def lin(ct2, hf, bias=True):
        v[f"{ct2}/weight"] = s[f"{hf}.weight"]
        if bias:
            v[f"{ct2}/bias"] = s[f"{hf}.bias"]

    def ln(ct2, hf):
        v[f"{ct2}/gamma"], v[f"{ct2}/beta"] = s[f"{hf}.weight"], s[f"{hf}.bias"]

    def fused(ct2, hf, parts):
        v[f"{ct2}/weight"] = np.concatenate([s[f"{hf}.{p}_proj.weight"] for p in parts])
        v[f"{ct2}/bias"] = np.concatenate([s.get(f"{hf}.{p}_proj.bias", np.zeros_like(s[f"{hf}.q_proj.bias"]))
                                           for p in parts])

    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    v["encoder/position_encodings/encodings"] = s["model.encoder.embed_positions.weight"]
    ln("encoder/layer_norm", "model.encoder.layer_norm")
    v["encoder/num_heads"] = v["decoder/num_heads"] = np.array(heads, dtype=np.int16)
    for i in range(n_enc):
        c, h = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        fused(f"{c}/self_attention/linear_0", f"{h}.self_attn", "qkv")
        lin(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
        ln(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        lin(f"{c}/ffn/linear_0", f"{h}.fc1")
        lin(f"{c}/ffn/linear_1", f"{h}.fc2")
        ln(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
    v["decoder/embeddings/weight"] = s["model.decoder.embed_tokens.weight"]
    v["decoder/position_encodings/encodings"] = s["model.decoder.embed_positions.weight"]
    ln("decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(n_dec):
        c, h = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        fused(f"{c}/self_attention/linear_0", f"{h}.self_attn", "qkv")
        lin(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
        ln(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        fused(f"{c}/attention/linear_0", f"{h}.encoder_attn", "q")
        fused(f"{c}/attention/linear_1", f"{h}.encoder_attn", "kv")
        lin(f"{c}/attention/linear_2", f"{h}.encoder_attn.out_proj")
        ln(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
        lin(f"{c}/ffn/linear_0", f"{h}.fc1")
        lin(f"{c}/ffn/linear_1", f"{h}.fc2")
        ln(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
    return v, {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_ct2_weights_round_trip_through_model_bin(tmp_path):
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=300, num_mel_bins=16, d_model=32, encoder_layers=2, decoder_layers=3,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                           decoder_ffn_dim=48, max_source_positions=20, max_target_positions=12,
                           pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=1)
    torch.manual_seed(0)
    original = WhisperForConditionalGeneration(config).state_dict()
    state = {k: t.numpy().astype(np.float16) for k, t in original.items() if k != "proj_out.weight"}
    variables, aliases = ct2_from_hf(state, 2, 3, 4)
    write_ct2(tmp_path / "model.bin", variables, aliases)

    read_vars, read_aliases = whisper_ct2.read_ct2_model(tmp_path / "model.bin")
    assert read_aliases == aliases
    converted, dims = whisper_ct2._weights(read_vars, read_aliases)
    assert converted.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(converted[key], value, err_msg=key)
    assert dims["tie_word_embeddings"] is True
    for key in ("vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers",
                "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim",
                "max_source_positions", "max_target_positions"):
        assert dims[key] == getattr(config, key), key


def test_ct2_reader_rejects_truncated_and_foreign_files(tmp_path):
    variables = {"encoder/num_heads": np.array(8, dtype=np.int16), "w": np.ones((2, 3), np.float16)}
    write_ct2(tmp_path / "model.bin", variables, {})
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "extra.bin").write_bytes(data + b"\0\0\0\0")
    with pytest.raises(whisper_ct2.ConversionError, match="trailing"):
        whisper_ct2.read_ct2_model(tmp_path / "extra.bin")
    (tmp_path / "other.bin").write_bytes(data.replace(b"WhisperSpec", b"WhisperSpez"))
    with pytest.raises(whisper_ct2.ConversionError, match="not Whisper"):
        whisper_ct2.read_ct2_model(tmp_path / "other.bin")
    with pytest.raises(whisper_ct2.ConversionError, match="no encoder"):
        whisper_ct2._weights(variables, {})


# ---------------------------------------------------------------- fetching the real weights

def test_fetch_is_ready_and_fast_the_second_time(stt_settings):
    started = time.monotonic()
    result = whisper.fetch(stt_settings, lambda _msg: None)
    assert result.ready, result.detail
    assert time.monotonic() - started < 2.0   # no download, no conversion when already done
    model, description, _multilingual = whisper.resolve(stt_settings)
    assert model and description


def test_offline_package_is_converted_with_provenance(converted_whisper_dir):
    manifest = json.loads((converted_whisper_dir / whisper.MANIFEST).read_text())
    assert manifest["model_bin_sha256"] == whisper.MODEL_BIN_SHA256
    assert "MIT" in (converted_whisper_dir / "LICENSE").read_text()
    from voiced.config import Settings

    model, description, multilingual = whisper.resolve(Settings(models={"offline": True}))
    assert model == str(converted_whisper_dir)
    assert multilingual is True
    assert "multilingual whisper-base" in description and whisper.PACKAGE in description


def test_converted_folder_loads_in_a_plain_transformers_pipeline(converted_whisper_dir):
    """What a transformers user would do with the folder: no voiced code, no extra kwargs."""
    import torch
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(converted_whisper_dir))
    assert asr.model.dtype == torch.float32
    text = asr(jfk_audio())["text"]
    assert wer(JFK_REFERENCE, text) <= 0.15, text


def test_missing_weights_are_fatal_and_say_how_to_fix(tmp_path):
    from voiced.config import Settings
    from voiced.engines.stt_whisper import WhisperSTT

    offline_empty = Settings(models={"dir": str(tmp_path / "none"), "offline": True})
    with pytest.raises(FatalEngineError, match="voiced models fetch"):
        WhisperSTT(offline_empty.stt, offline_empty).load()
    (tmp_path / "empty").mkdir()
    local_empty = Settings(stt={"model": str(tmp_path / "empty")}, models={"offline": True})
    assert not whisper.status(local_empty).ready
    with pytest.raises(FatalEngineError, match="voiced models fetch"):
        WhisperSTT(local_empty.stt, local_empty).load()


# ---------------------------------------------------------------- the engine

def test_engine_reports_what_it_loaded(whisper_stt, stt_settings):
    info = whisper_stt.info
    assert isinstance(whisper_stt, SpeechToText)
    assert info.name == "whisper" and info.device in ("cpu", "cuda")
    _model, description, multilingual = whisper.resolve(stt_settings)
    assert info.source == description
    if multilingual:
        assert any("language forced" in note for note in info.notes)


def test_jfk_speech(whisper_stt):
    result = whisper_stt.transcribe(jfk_audio())
    assert result.rejected is None
    assert result.audio_s == pytest.approx(11.0, abs=0.1)
    assert result.no_speech_prob is not None and result.no_speech_prob < 0.3
    assert wer(JFK_REFERENCE, result.text) <= 0.15, result.text


@pytest.mark.parametrize("sentence", SENTENCES)
def test_synthetic_speech(whisper_stt, sentence):
    assert_hears_request(whisper_stt, sentence)


@pytest.mark.parametrize("name, audio", non_speech())
def test_non_speech_is_rejected(whisper_stt, name, audio):
    assert_rejects(whisper_stt, name, audio)


def test_bad_input_shapes(whisper_stt):
    with pytest.raises(ValueError, match="mono"):
        whisper_stt.transcribe(np.zeros((2, 16_000), np.float32))
    empty = whisper_stt.transcribe(np.zeros(0, np.float32))
    assert empty.text == "" and empty.rejected == "empty audio"
