"""The ONNX transformer encoder: valid, dynamic in batch and length, and equal to BERT's maths written in NumPy."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from shoal.zoo import EncoderConfig, mean_pool, onnx_session, transformer_encoder
from shoal.zoo.transformer import random_encoder_weights

CONFIG = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=4, ffn=64, max_len=40)


def _feeds(n: int, length: int, seed: int = 0, pad_from: int | None = None) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(seed).integers(1, CONFIG.vocab_size, (n, length)).astype(np.int64)
    mask = np.ones_like(ids)
    if pad_from is not None:
        ids[:, pad_from:], mask[:, pad_from:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


def _layer_norm(x: np.ndarray, w: dict, prefix: str, eps: float) -> np.ndarray:
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]


def _reference(w: dict, ids: np.ndarray, mask: np.ndarray, c: EncoderConfig) -> np.ndarray:
    """Hugging Face's BertModel forward pass (eval mode, token type 0), in float64 NumPy."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    n, length = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
    x = _layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], w, "embeddings.LayerNorm", c.layer_norm_eps)
    bias = (1.0 - mask[:, None, None, :]) * -1e4
    for i in range(c.layers):
        p = f"encoder.layer.{i}."

        def lin(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return v @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

        def heads(v: np.ndarray) -> np.ndarray:
            return v.reshape(n, length, c.heads, c.head_dim).transpose(0, 2, 1, 3)

        q, k, v = (heads(lin(x, f"attention.self.{s}")) for s in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(c.head_dim) + bias
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(n, length, c.hidden)
        x = _layer_norm(lin(ctx, "attention.output.dense") + x, w, f"{p}attention.output.LayerNorm", c.layer_norm_eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
        x = _layer_norm(lin(h, "output.dense") + x, w, f"{p}output.LayerNorm", c.layer_norm_eps)
    return x


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    # Trained-looking weights: larger than the 0.02 init, and LayerNorms that are not the identity.
    rng = np.random.default_rng(7)
    return {
        k: (v + rng.standard_normal(v.shape) * 0.2).astype(np.float32)
        for k, v in random_encoder_weights(CONFIG, 1).items()
    }


@pytest.fixture(scope="module")
def session(weights):
    return onnx_session(transformer_encoder(CONFIG, weights))


def test_graph_is_valid_opset_17_with_dynamic_batch_and_length() -> None:
    proto = onnx.load_from_string(transformer_encoder(CONFIG))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    ops = {n.op_type for n in proto.graph.node}
    assert {"LayerNormalization", "Softmax", "Erf", "Gather", "MatMul"} <= ops
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {"input_ids": ["N", "L"], "attention_mask": ["N", "L"]}


def test_matches_bert_written_in_numpy(session, weights) -> None:
    feeds = _feeds(2, 11, seed=3, pad_from=8)
    got = session.run(["last_hidden_state"], feeds)[0]
    want = _reference(weights, feeds["input_ids"], feeds["attention_mask"], CONFIG)
    assert got.shape == (2, 11, CONFIG.hidden) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_any_length_up_to_max_len_and_padding_does_not_leak(session) -> None:
    for n, length in [(1, 1), (3, 5), (2, CONFIG.max_len)]:
        assert session.run(None, _feeds(n, length))[0].shape == (n, length, CONFIG.hidden)
    short = _feeds(1, 6, seed=5)
    padded = {k: np.pad(v, ((0, 0), (0, 10))) for k, v in short.items()}  # ids and mask padded with 0
    a = session.run(None, short)[0]
    b = session.run(None, padded)[0]
    np.testing.assert_allclose(a, b[:, :6], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mean_pool(a, short["attention_mask"]), mean_pool(b, padded["attention_mask"]), atol=1e-4)


def test_rows_of_a_batch_do_not_interact(session) -> None:
    feeds = _feeds(3, 9, seed=2)
    both = session.run(None, feeds)[0]
    one = session.run(None, {k: v[1:2] for k, v in feeds.items()})[0]
    np.testing.assert_allclose(both[1:2], one, rtol=1e-4, atol=1e-4)


def test_seeded_and_deterministic() -> None:
    assert transformer_encoder(CONFIG, seed=1) == transformer_encoder(CONFIG, seed=1)
    assert transformer_encoder(CONFIG, seed=1) != transformer_encoder(CONFIG, seed=2)


def test_tiny_default_parameter_count() -> None:
    c = EncoderConfig()
    per_layer = 4 * (c.hidden * c.hidden + c.hidden) + 2 * c.hidden * c.ffn + c.ffn + c.hidden + 4 * c.hidden
    embeddings = (c.vocab_size + c.max_len + c.type_vocab_size) * c.hidden + 2 * c.hidden
    assert sum(v.size for v in random_encoder_weights(c).values()) == embeddings + c.layers * per_layer


def test_config_and_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="multiple of heads"):
        EncoderConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="layers"):
        EncoderConfig(layers=0)
    w = random_encoder_weights(CONFIG)
    del w["encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.output\.dense\.bias.*missing"):
        transformer_encoder(CONFIG, w)
    w = random_encoder_weights(CONFIG)
    w["embeddings.word_embeddings.weight"] = w["embeddings.word_embeddings.weight"][:10]
    with pytest.raises(ValueError, match="shape"):
        transformer_encoder(CONFIG, w)


def test_mean_pool_ignores_padding_and_normalises() -> None:
    h = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(mean_pool(h, mask), [[1, 2], [6, 7]])
    np.testing.assert_allclose(np.linalg.norm(mean_pool(h, mask, normalize=True), axis=1), 1, rtol=1e-6)
