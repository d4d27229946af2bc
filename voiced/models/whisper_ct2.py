"""Convert a CTranslate2 (faster-whisper) Whisper folder into a transformers one.

The only Whisper weights installable on machines without the model hub come in CTranslate2
format. transformers cannot read them, so this inverts ctranslate2's own converter
(ctranslate2/converters/transformers.py, WhisperLoader/BartLoader): it parses `model.bin`
with numpy (no ctranslate2 runtime needed), splits the fused attention projections, renames
everything to `WhisperForConditionalGeneration`'s names and writes a folder that
`transformers.pipeline("automatic-speech-recognition", model=DIR)` loads.
"""
from __future__ import annotations

import json
import mmap
import re
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

CT2_FILES = ("config.json", "model.bin", "tokenizer.json")
# ctranslate2/specs/model_spec.py `_dtype_to_type_id`: the order of include/ctranslate2/types.h.
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SUPPORTED_BINARY_VERSIONS = (5, 6)


class ConversionError(ValueError):
    """The folder is not a CTranslate2 Whisper model this converter understands."""


def read_ct2_model(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 `model.bin`: named tensors, plus aliases (name -> target name).

    Layout (model_spec.py `_serialize`): u32 version, str spec name, u32 revision, u32 count,
    then per variable: str name, u8 rank, u32 dims..., u8 dtype id, u32 byte count, raw bytes;
    then u32 alias count and (str alias, str target) pairs. str = u16 length (incl. NUL), bytes.
    """
    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    off = 0

    def take(fmt: str):
        nonlocal off
        values = struct.unpack_from("<" + fmt, buf, off)
        off += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:
        nonlocal off
        length = take("H")
        text = bytes(buf[off:off + length - 1]).decode("utf-8")
        off += length
        return text

    version = take("I")
    if version not in _SUPPORTED_BINARY_VERSIONS:
        raise ConversionError(f"{path}: CTranslate2 binary version {version} is not supported")
    spec = string()
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: a {spec} model, not Whisper")
    take("I")  # spec revision: the variable names below are what matters
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        shape = tuple(take("I") for _ in range(rank))
        dtype_id = take("B")
        nbytes = take("I")
        raw = memoryview(buf)[off:off + nbytes]   # no copy: the file's pages back the array
        off += nbytes
        variables[name] = _decode(raw, _CT2_DTYPES[dtype_id], shape)
    aliases = {}
    for _ in range(take("I")):
        alias = string()
        aliases[alias] = string()
    if off != len(buf):
        raise ConversionError(f"{path}: {len(buf) - off} trailing bytes; truncated or corrupt file?")
    return variables, aliases


def _decode(raw: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the upper half of a float32
        halves = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return halves.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)   # a read-only view of the mapped file


def _weights(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> tuple[dict[str, np.ndarray], dict]:
    """Map CT2 names to transformers names; return the state dict and the model dimensions."""
    if any(name.endswith("weight_scale") for name in variables):
        raise ConversionError("int8-quantised CTranslate2 models are not supported: use a float16/float32 one")

    def get(name: str) -> np.ndarray:
        try:
            return variables[aliases.get(name, name)]
        except KeyError:
            raise ConversionError(f"model.bin has no {name}: not a Whisper layout this converter knows") from None

    out: dict[str, np.ndarray] = {}

    def linear(hf: str, ct2: str, bias: bool = True) -> None:
        out[f"{hf}.weight"] = get(f"{ct2}/weight")
        if bias:
            out[f"{hf}.bias"] = get(f"{ct2}/bias")

    def norm(hf: str, ct2: str) -> None:
        out[f"{hf}.weight"] = get(f"{ct2}/gamma")
        out[f"{hf}.bias"] = get(f"{ct2}/beta")

    def split(hf_prefix: str, ct2: str, parts: tuple[str, ...]) -> None:
        # CT2 fuses q/k/v (self) or k/v (cross) row-wise and gives k a zero bias; Whisper's
        # k_proj has no bias at all, so that part is dropped.
        weights = np.split(get(f"{ct2}/weight"), len(parts))
        biases = np.split(get(f"{ct2}/bias"), len(parts))
        for part, w, b in zip(parts, weights, biases):
            out[f"{hf_prefix}.{part}_proj.weight"] = w
            if part != "k":
                out[f"{hf_prefix}.{part}_proj.bias"] = b

    def layer_count(prefix: str) -> int:
        found = {int(m.group(1)) for n in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
        return max(found) + 1 if found else 0

    n_enc, n_dec = layer_count("encoder"), layer_count("decoder")
    if not n_enc or not n_dec:
        raise ConversionError("no encoder or decoder layers found")

    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    out["model.encoder.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        hf, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        split(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q", "k", "v"))
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    out["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        hf, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        split(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q", "k", "v"))
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        split(f"{hf}.encoder_attn", f"{ct2}/attention/linear_0", ("q",))
        split(f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", ("k", "v"))
        linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
        norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    projection = get("decoder/projection/weight")
    tied = np.array_equal(projection, out["model.decoder.embed_tokens.weight"])
    if not tied:
        out["proj_out.weight"] = projection
    dims = {
        "vocab_size": projection.shape[0],
        "num_mel_bins": out["model.encoder.conv1.weight"].shape[1],
        "d_model": projection.shape[1],
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(get("encoder/num_heads")),
        "decoder_attention_heads": int(get("decoder/num_heads")),
        "encoder_ffn_dim": out["model.encoder.layers.0.fc1.weight"].shape[0],
        "decoder_ffn_dim": out["model.decoder.layers.0.fc1.weight"].shape[0],
        "max_source_positions": out["model.encoder.embed_positions.weight"].shape[0],
        "max_target_positions": out["model.decoder.embed_positions.weight"].shape[0],
        "tie_word_embeddings": tied,
    }
    return out, dims


def _special_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}


def _configs(dims: dict, ct2_config: dict, specials: dict[str, int]):
    from transformers import GenerationConfig, WhisperConfig

    def tid(token: str) -> int:
        if token not in specials:
            raise ConversionError(f"tokenizer.json lacks {token}")
        return specials[token]

    eot, sot = tid("<|endoftext|>"), tid("<|startoftranscript|>")
    transcribe, translate = tid("<|transcribe|>"), tid("<|translate|>")
    # openai's rule: English-only models have 51864 tokens. CT2's lang_ids cannot tell (its
    # converter lists language ids for .en models too); language tokens sit between
    # <|startoftranscript|> and <|translate|>.
    multilingual = dims["vocab_size"] >= 51865
    langs = {t: i for t, i in specials.items() if sot < i < translate}
    common = {
        "pad_token_id": eot, "bos_token_id": eot, "eos_token_id": eot, "decoder_start_token_id": sot,
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or [220, eot]),
    }
    # float32, so dtype="auto" gives a model that runs well on any CPU; CUDA callers ask for fp16.
    config = WhisperConfig(**dims, **common, scale_embedding=False, activation_function="gelu",
                           architectures=["WhisperForConditionalGeneration"], dtype="float32")
    gen = GenerationConfig(
        **common,
        max_length=dims["max_target_positions"],
        no_timestamps_token_id=tid("<|notimestamps|>"),
        prev_sot_token_id=tid("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=multilingual,
        alignment_heads=ct2_config.get("alignment_heads") or [],
        # Without forced ids a call that gives no language keeps predicting the prompt
        # tokens (seen here): keep openai's default prompt.
        forced_decoder_ids=[[1, None], [2, transcribe]] if multilingual else [[1, tid("<|notimestamps|>")]],
    )
    if multilingual:
        gen.lang_to_id = langs
        gen.task_to_id = {"transcribe": transcribe, "translate": translate}
    return config, gen


def _tokenizer_json(tokenizer_json: dict, vocab_size: int) -> dict:
    """Add Whisper's timestamp tokens (<|0.00|>..<|30.00|>), which CT2's copy leaves out, so
    the tokenizer covers every id the model can emit."""
    data = json.loads(json.dumps(tokenizer_json))
    added = data["added_tokens"]
    start = max(t["id"] for t in added) + 1
    for i, tok_id in enumerate(range(start, vocab_size)):
        added.append({"id": tok_id, "content": f"<|{i * 0.02:.2f}|>", "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": False})
    return data


def convert(ct2_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert `ct2_dir` into a transformers Whisper folder at `out_dir` (replaced atomically)."""
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    missing = [name for name in CT2_FILES if not (ct2_dir / name).is_file()]
    if missing:
        raise ConversionError(f"{ct2_dir} is not a CTranslate2 Whisper folder (missing {', '.join(missing)})")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    tok_json = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))
    variables, aliases = read_ct2_model(ct2_dir / "model.bin")
    state, dims = _weights(variables, aliases)
    config, gen = _configs(dims, ct2_config, _special_ids(tok_json))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        # float32 on disk (twice the fp16 source) because transformers then maps the file
        # instead of upcasting a copy: ~260 MB less resident memory on CPU, measured here.
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(tmp)
        gen.save_pretrained(tmp)

        tok_file = tmp / "ct2-tokenizer.json"
        tok_file.write_text(json.dumps(_tokenizer_json(tok_json, dims["vocab_size"]), ensure_ascii=False),
                            encoding="utf-8")
        specials = [t["content"] for t in tok_json["added_tokens"] if t.get("special")]
        tokenizer = WhisperTokenizer(tokenizer_file=str(tok_file), extra_special_tokens=specials,
                                     model_max_length=dims["max_target_positions"])
        tok_file.unlink()
        extractor = WhisperFeatureExtractor(feature_size=dims["num_mel_bins"])
        WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(tmp)

        tmp.chmod(0o755)   # mkdtemp makes it private; the daemon may run as another user
        for path in tmp.iterdir():
            path.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
