"""A small builder for CNN graphs in ONNX, with seeded random weights.

Shoal's benchmarks need real models with real compute, but nothing may be downloaded, so the zoo defines models in
code. The weights are random (He-initialised, so activations neither vanish nor blow up through deep nets); the
compute, memory traffic and graph shape are those of the real architectures, which is what latency depends on.

The builder tracks the channel count of every tensor it makes, so each layer only names what it adds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["OPSET", "IR_VERSION", "GraphBuilder"]

#: Opset 17 has every operator the zoo uses in its modern form and is well supported by ONNX Runtime.
OPSET = 17
#: The IR version that goes with opset 17; pinned so that models load on older ONNX Runtime releases too.
IR_VERSION = 8


class GraphBuilder:
    """Builds one ONNX graph layer by layer; each method returns the name of the tensor it produced."""

    def __init__(self, name: str, seed: int = 0) -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)
        self._nodes: list[onnx.NodeProto] = []
        self._inits: list[onnx.TensorProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        self._channels: dict[str, int] = {}
        self._count: dict[str, int] = {}

    # -- bookkeeping ----------------------------------------------------------------------------------------------
    def _fresh(self, kind: str) -> str:
        n = self._count.get(kind, 0)
        self._count[kind] = n + 1
        return f"{kind}_{n}"

    def _const(self, kind: str, value: np.ndarray) -> str:
        name = self._fresh(kind)
        self._inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def _node(self, op: str, inputs: Sequence[str], channels: int, **attrs: object) -> str:
        out = self._fresh(op.lower())
        self._nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        self._channels[out] = channels
        return out

    def channels(self, x: str) -> int:
        """Channel count of tensor ``x`` (features for 2-D tensors)."""
        return self._channels[x]

    # -- graph ends -----------------------------------------------------------------------------------------------
    def input(self, name: str, channels: int, height: int | None = None, width: int | None = None) -> str:
        """Declare an NCHW float32 input with a dynamic batch ``N``; ``None`` height/width stay dynamic too."""
        dims: list[int | str] = ["N", channels, "H" if height is None else height, "W" if width is None else width]
        self._inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        self._channels[name] = channels
        return name

    def output(self, x: str, name: str, *, spatial: bool = False) -> str:
        """Expose ``x`` as a float32 output called ``name``: 2-D ``(N, features)``, or with ``spatial=True`` a 4-D
        ``(N, C, h, w)`` feature map whose height and width are dynamic."""
        self._nodes.append(helper.make_node("Identity", [x], [name], name=f"{name}_out"))
        dims: list[int | str] = ["N", self._channels[x]] + ([f"{name}_h", f"{name}_w"] if spatial else [])
        self._outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        return name

    # -- layers ---------------------------------------------------------------------------------------------------
    def _conv_weights(self, cin: int, cout: int, kernel: int, group: int) -> np.ndarray:
        fan_in = cin // group * kernel * kernel
        shape = (cout, cin // group, kernel, kernel)
        return (self._rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def _bn_params(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Random but plausible trained statistics: scale ~1, small shift, small mean, variance ~1."""
        gamma = self._rng.uniform(0.5, 1.0, c).astype(np.float32)
        beta = (self._rng.standard_normal(c) * 0.05).astype(np.float32)
        mean = (self._rng.standard_normal(c) * 0.05).astype(np.float32)
        var = self._rng.uniform(0.5, 1.5, c).astype(np.float32)
        return gamma, beta, mean, var

    def conv(
        self,
        x: str,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        group: int = 1,
        bias: bool = True,
        bn: str | None = None,
    ) -> str:
        """A 2-D convolution with "same"-style padding ``kernel // 2``.

        ``bn="fold"`` folds a batch norm into the weights and bias, as inference exporters do; ``bn="op"`` emits a
        real BatchNormalization node after the convolution (ONNX Runtime fuses it when it optimises the graph).
        """
        cin = self._channels[x]
        if cin % group or out_channels % group:
            raise ValueError(f"group {group} must divide both {cin} input and {out_channels} output channels")
        w = self._conv_weights(cin, out_channels, kernel, group)
        b = np.zeros(out_channels, np.float32)
        if bn == "fold":
            gamma, beta, mean, var = self._bn_params(out_channels)
            scale = gamma / np.sqrt(var + 1e-5)
            w = (w * scale[:, None, None, None]).astype(np.float32)
            b = (beta - mean * scale).astype(np.float32)
            bias = True
        elif bn not in (None, "op"):
            raise ValueError(f"bn must be None, 'fold' or 'op', got {bn!r}")
        inputs = [x, self._const("w", w)] + ([self._const("b", b)] if bias else [])
        p = kernel // 2
        y = self._node(
            "Conv",
            inputs,
            out_channels,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[p, p, p, p],
            group=group,
        )
        return self.batchnorm(y) if bn == "op" else y

    def depthwise(self, x: str, kernel: int = 3, stride: int = 1, bn: str | None = "fold") -> str:
        """A depthwise convolution: one filter per channel (``group`` equal to the channel count)."""
        c = self._channels[x]
        return self.conv(x, c, kernel, stride, group=c, bn=bn)

    def batchnorm(self, x: str) -> str:
        """A real BatchNormalization node in inference mode, with random running statistics."""
        c = self._channels[x]
        params = [self._const(k, v) for k, v in zip(("gamma", "beta", "mean", "var"), self._bn_params(c), strict=True)]
        return self._node("BatchNormalization", [x, *params], c, epsilon=1e-5)

    def sigmoid(self, x: str) -> str:
        return self._node("Sigmoid", [x], self._channels[x])

    def relu(self, x: str) -> str:
        return self._node("Relu", [x], self._channels[x])

    def relu6(self, x: str) -> str:
        """``min(max(x, 0), 6)``, MobileNet's activation, as a Clip with constant bounds."""
        lo = self._const("clip_min", np.array(0.0, np.float32))
        hi = self._const("clip_max", np.array(6.0, np.float32))
        return self._node("Clip", [x, lo, hi], self._channels[x])

    def maxpool(self, x: str, kernel: int, stride: int, pad: int = 0) -> str:
        return self._node(
            "MaxPool",
            [x],
            self._channels[x],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
        )

    def global_avg_pool(self, x: str) -> str:
        """Average each channel over the whole image, then flatten to ``(N, C)``."""
        y = self._node("GlobalAveragePool", [x], self._channels[x])
        return self._node("Flatten", [y], self._channels[x], axis=1)

    def gemm(self, x: str, out_features: int) -> str:
        """A fully connected layer ``x @ W.T + b`` on a ``(N, in)`` tensor, with Glorot-scaled weights."""
        cin = self._channels[x]
        w = (self._rng.standard_normal((out_features, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
        b = np.zeros(out_features, np.float32)
        return self._node("Gemm", [x, self._const("fc_w", w), self._const("fc_b", b)], out_features, transB=1)

    def add(self, a: str, b: str) -> str:
        """Element-wise sum, for residual connections; both tensors must have the same shape."""
        if self._channels[a] != self._channels[b]:
            raise ValueError(f"cannot add {a} ({self._channels[a]} channels) and {b} ({self._channels[b]})")
        return self._node("Add", [a, b], self._channels[a])

    # -- result ---------------------------------------------------------------------------------------------------
    def model(self) -> onnx.ModelProto:
        """The finished, checked model."""
        if not self._inputs or not self._outputs:
            raise ValueError(f"graph {self.name!r} needs an input and an output before it can be built")
        graph = helper.make_graph(self._nodes, self.name, self._inputs, self._outputs, self._inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="shoal.zoo"
        )
        onnx.checker.check_model(model)
        return model

    def to_bytes(self) -> bytes:
        """The serialized model, ready for :func:`shoal.zoo.onnx_session` or to be written to a ``.onnx`` file."""
        return self.model().SerializeToString()
