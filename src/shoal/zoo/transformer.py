"""A BERT-style transformer encoder as an ONNX graph, with seeded random weights or given (pretrained) ones.

The graph is the BERT layout: token + absolute position (+ token-type 0) embeddings and a LayerNorm, then ``layers``
post-LN blocks of multi-head self-attention and a GELU feed-forward network. It takes ``input_ids`` and
``attention_mask``, both ``(N, L)`` int64 with dynamic batch ``N`` and sequence length ``L`` (up to ``max_len``), and
returns ``last_hidden_state`` ``(N, L, hidden)`` float32. Opset 17, so LayerNormalization is one operator; GELU is
written with Erf, which ONNX Runtime fuses into its Gelu kernel.

Weights are a dict of arrays named as in Hugging Face's ``BertModel`` state dict (``encoder.layer.0.attention.self.
query.weight``, ...), so a real checkpoint maps onto the graph by name: :mod:`shoal.zoo.minilm` does that for
all-MiniLM-L6-v2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shoal.zoo.onnx_builder import IR_VERSION, OPSET

__all__ = ["EncoderConfig", "mean_pool", "random_encoder_weights", "transformer_encoder"]


@dataclass(frozen=True)
class EncoderConfig:
    """The shape of an encoder. The defaults are a tiny model (2 layers, hidden 128) that runs in about a
    millisecond per short sentence on one core."""

    vocab_size: int = 1000
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    max_len: int = 256
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden", "layers", "heads", "ffn", "max_len", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _weight_shapes(c: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the graph reads, with its shape, named as in Hugging Face's BertModel."""
    h, f = c.hidden, c.ffn
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (c.vocab_size, h),
        "embeddings.position_embeddings.weight": (c.max_len, h),
        "embeddings.token_type_embeddings.weight": (c.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(c.layers):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            shapes[f"{p}attention.self.{part}.weight"] = (h, h)
            shapes[f"{p}attention.self.{part}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (f, h)
        shapes[f"{p}intermediate.dense.bias"] = (f,)
        shapes[f"{p}output.dense.weight"] = (h, f)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    return shapes


def random_encoder_weights(config: EncoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights initialised as BERT's are before training: normal(0, 0.02) matrices, zero biases, unit LayerNorms."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in _weight_shapes(config).items():
        if name.endswith("LayerNorm.weight"):
            w = np.ones(shape, np.float32)
        elif name.endswith("bias"):
            w = np.zeros(shape, np.float32)
        else:
            w = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        out[name] = w
    return out


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op: str, *inputs: str, **attrs: object) -> str:
        self._n += 1
        out = f"{op.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


def transformer_encoder(
    config: EncoderConfig | None = None, weights: Mapping[str, np.ndarray] | None = None, seed: int = 0
) -> bytes:
    """The serialized ONNX encoder of ``config`` (default: the tiny :class:`EncoderConfig`).

    ``weights`` (Hugging Face BertModel names; extra entries such as ``embeddings.position_ids`` or a pooler are
    ignored) default to :func:`random_encoder_weights` with ``seed``. A missing or misshapen weight is a ValueError
    naming it.
    """
    c = config or EncoderConfig()
    w = dict(weights) if weights is not None else random_encoder_weights(c, seed)
    for name, shape in _weight_shapes(c).items():
        if name not in w:
            raise ValueError(f"weight {name!r} is missing")
        if tuple(w[name].shape) != shape:
            raise ValueError(f"weight {name!r} has shape {tuple(w[name].shape)}, expected {shape}")

    def t(name: str) -> np.ndarray:
        return np.asarray(w[name], np.float32)

    g = _Graph()
    ids, mask = "input_ids", "attention_mask"
    eps = float(c.layer_norm_eps)

    def layer_norm(x: str, prefix: str) -> str:
        scale = g.const(f"{prefix}.weight", t(f"{prefix}.weight"))
        bias = g.const(f"{prefix}.bias", t(f"{prefix}.bias"))
        return g.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)

    def linear(x: str, prefix: str) -> str:
        # Stored as (in, out) so that MatMul needs no transpose; ORT fuses MatMul + Add into one kernel.
        wt = g.const(f"{prefix}.weight", t(f"{prefix}.weight").T)
        return g.op("Add", g.op("MatMul", x, wt), g.const(f"{prefix}.bias", t(f"{prefix}.bias")))

    # Embeddings: word + position (the first L rows of the table) + token type 0, then LayerNorm.
    word = g.op("Gather", g.const("embeddings.word_embeddings.weight", t("embeddings.word_embeddings.weight")), ids)
    seq_len = g.op("Shape", ids, start=1, end=2)
    zero = g.const("zero_1d", np.array([0], np.int64))
    positions = g.const("embeddings.position_embeddings.weight", t("embeddings.position_embeddings.weight"))
    pos = g.op("Slice", positions, zero, seq_len, zero)
    type0 = g.const("token_type_0", t("embeddings.token_type_embeddings.weight")[0])
    x = layer_norm(g.op("Add", g.op("Add", word, pos), type0), "embeddings.LayerNorm")

    # Additive attention bias: 0 where the mask is 1, a large negative number on padding; (N, 1, 1, L).
    maskf = g.op("Cast", mask, to=TensorProto.FLOAT)
    inv = g.op("Sub", g.const("one", np.array(1.0, np.float32)), maskf)
    bias = g.op("Mul", inv, g.const("neg_big", np.array(-1e4, np.float32)))
    bias = g.op("Unsqueeze", bias, g.const("axes_1_2", np.array([1, 2], np.int64)))

    split_heads = g.const("split_heads", np.array([0, 0, c.heads, c.head_dim], np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, c.hidden], np.int64))
    scale = g.const("attn_scale", np.array(1.0 / np.sqrt(c.head_dim), np.float32))
    half = g.const("half", np.array(0.5, np.float32))
    one = "one"
    inv_sqrt2 = g.const("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), np.float32))

    for i in range(c.layers):
        p = f"encoder.layer.{i}."
        q = g.op("Transpose", g.op("Reshape", linear(x, f"{p}attention.self.query"), split_heads), perm=[0, 2, 1, 3])
        k = g.op("Transpose", g.op("Reshape", linear(x, f"{p}attention.self.key"), split_heads), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", linear(x, f"{p}attention.self.value"), split_heads), perm=[0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
        ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merge_heads)
        x = layer_norm(g.op("Add", linear(ctx, f"{p}attention.output.dense"), x), f"{p}attention.output.LayerNorm")
        hmid = linear(x, f"{p}intermediate.dense")
        gelu = g.op("Mul", g.op("Mul", hmid, half), g.op("Add", g.op("Erf", g.op("Mul", hmid, inv_sqrt2)), one))
        x = layer_norm(g.op("Add", linear(gelu, f"{p}output.dense"), x), f"{p}output.LayerNorm")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state_out"))
    inputs = [
        helper.make_tensor_value_info(ids, TensorProto.INT64, ["N", "L"]),
        helper.make_tensor_value_info(mask, TensorProto.INT64, ["N", "L"]),
    ]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["N", "L", c.hidden])]
    graph = helper.make_graph(g.nodes, "transformer_encoder", inputs, outputs, g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="shoal.zoo"
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def mean_pool(hidden: np.ndarray, mask: np.ndarray, normalize: bool = False) -> np.ndarray:
    """Average ``hidden`` ``(N, L, H)`` over the positions where ``mask`` ``(N, L)`` is nonzero -> ``(N, H)``.

    This is sentence-transformers' mean pooling; ``normalize=True`` then scales each row to unit length, as its
    ``Normalize`` module does, so that dot products are cosine similarities.
    """
    m = (np.asarray(mask) != 0).astype(np.float32)[:, :, None]
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    if normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)
