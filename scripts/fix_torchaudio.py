"""Make torchaudio importable beside a CPU-only torch.

The only torchaudio release built for recent torch is a CUDA build whose compiled
extension needs libc10_cuda.so. chatterbox only uses torchaudio's pure-Python parts
(Resample, kaldi.fbank, Spectrogram...), so when the extension cannot load we move it
aside and torchaudio's loader skips it. With a CUDA torch nothing is touched.
"""
import ctypes
import importlib.util
import pathlib
import sys

spec = importlib.util.find_spec("torchaudio")
if spec is None or not spec.submodule_search_locations:
    sys.exit(0)
lib = pathlib.Path(list(spec.submodule_search_locations)[0]) / "lib"
import torch  # noqa: E402  (loads libc10 etc. so only truly missing libraries fail)

broken = []
for so in sorted(lib.glob("*.so")):
    try:
        ctypes.CDLL(str(so))
    except OSError as exc:
        broken.append((so, exc))
for so, exc in broken:
    so.rename(so.with_suffix(".so.disabled"))
    why = str(exc).split(": ", 1)[-1]   # drop the .so's own path, keep the missing library
    print(f"[setup] torchaudio: disabled {so.name} ({why})")
import torchaudio  # noqa: E402,F401  (fails loudly here if that was not enough)
