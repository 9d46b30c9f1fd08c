"""Convolutional networks with the topology of well-known models and seeded random weights.

Each function returns a serialized ONNX model (``bytes``): it crosses process boundaries and goes to disk as is, and
:func:`shoal.zoo.onnx_session` opens it. All models take ``input``, an NCHW float32 batch with a dynamic batch size
``N`` and dynamic height and width (every model ends in global average pooling), and return ``logits`` of shape
``(N, num_classes)``. With ``features_only=True`` the backbones stop before the pooling and the classifier and return
``features``, the last feature map ``(N, C, H/32, W/32)``, for heads that run as models of their own (see
:mod:`shoal.zoo.heads`).
"""

from __future__ import annotations

from shoal.zoo.onnx_builder import GraphBuilder

__all__ = ["mobilenet_v2_like", "resnet18_like", "resnet50_like", "small_cnn"]


def _check(num_classes: int, **sizes: float) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    for name, v in sizes.items():
        if not v > 0:
            raise ValueError(f"{name} must be positive, got {v!r}")


def small_cnn(num_classes: int = 10, seed: int = 0) -> bytes:
    """Three conv layers and a classifier: a fast model (about a millisecond per 64x64 image on one core).

    It stands for the light models of a pipeline (a detector's proposal net, an OCR line classifier) whose latency
    is comparable to the data hop between functions, where the choice of granularity matters most.
    """
    _check(num_classes)
    g = GraphBuilder("small_cnn", seed)
    x = g.input("input", 3)
    for i, c in enumerate((16, 32, 64)):
        x = g.relu(g.conv(x, c, 3, bn="fold"))
        if i < 2:
            x = g.maxpool(x, 2, 2)
    return _finish(g, x, num_classes)


def resnet18_like(
    num_classes: int = 1000, width: int = 64, seed: int = 0, *, fold_bn: bool = False, features_only: bool = False
) -> bytes:
    """ResNet-18: a 7x7 stem, four stages of two basic blocks, global pooling and a fully connected layer.

    ``width`` is the first stage's channel count (64 in the real model); later stages double it. With
    ``fold_bn=False`` the graph keeps real BatchNormalization nodes as a PyTorch export does; ``True`` folds them
    into the convolutions. ONNX Runtime fuses them either way, so latency is the same.
    """
    _check(num_classes, width=width)
    bn = "fold" if fold_bn else "op"
    g = GraphBuilder("resnet18_like", seed)
    x = _resnet_stem(g, width, bn)
    for stage, mult in enumerate((1, 2, 4, 8)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(g, x, width * mult, stride, bn)
    return _finish(g, x, num_classes, features_only)


#: Bottleneck blocks per stage of ResNet-50 (ResNet-101 is (3, 4, 23, 3), ResNet-152 (3, 8, 36, 3)).
_RESNET50_BLOCKS = (3, 4, 6, 3)


def resnet50_like(
    num_classes: int = 1000, width: int = 64, seed: int = 0, *, fold_bn: bool = False, features_only: bool = False
) -> bytes:
    """ResNet-50 (v1.5, as torchvision's): a 7x7 stem, four stages of [3, 4, 6, 3] bottleneck blocks, global pooling
    and a fully connected layer; 25.6M parameters at full width.

    A bottleneck block is a 1x1 reduction to the stage's width, a 3x3 convolution (strided in a stage's first block)
    and a 1x1 expansion to four times the width. ``width`` is the first stage's bottleneck width (64 in the real
    model; the stages use ``width * (1, 2, 4, 8)`` and output four times that, so 2048 features at full width);
    ``fold_bn`` as in :func:`resnet18_like`.
    """
    _check(num_classes, width=width)
    bn = "fold" if fold_bn else "op"
    g = GraphBuilder("resnet50_like", seed)
    x = _resnet_stem(g, width, bn)
    for stage, (mult, blocks) in enumerate(zip((1, 2, 4, 8), _RESNET50_BLOCKS, strict=True)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _bottleneck_block(g, x, width * mult, stride, bn)
    return _finish(g, x, num_classes, features_only)


def _resnet_stem(g: GraphBuilder, width: int, bn: str) -> str:
    """7x7 stride-2 convolution and 3x3 stride-2 max pooling: the input shrinks 4x before the first stage."""
    x = g.input("input", 3)
    x = g.relu(g.conv(x, width, 7, stride=2, bias=False, bn=bn))
    return g.maxpool(x, 3, 2, pad=1)


def _bottleneck_block(g: GraphBuilder, x: str, width: int, stride: int, bn: str, expansion: int = 4) -> str:
    """1x1 reduce, 3x3 (carrying the stride, as in v1.5), 1x1 expand, plus a shortcut projected when shapes differ."""
    out = width * expansion
    y = g.relu(g.conv(x, width, 1, bias=False, bn=bn))
    y = g.relu(g.conv(y, width, 3, stride=stride, bias=False, bn=bn))
    y = g.conv(y, out, 1, bias=False, bn=bn)
    shortcut = x
    if stride != 1 or g.channels(x) != out:
        shortcut = g.conv(x, out, 1, stride=stride, bias=False, bn=bn)
    return g.relu(g.add(y, shortcut))


def _basic_block(g: GraphBuilder, x: str, channels: int, stride: int, bn: str) -> str:
    """Two 3x3 convolutions plus a shortcut; a strided 1x1 convolution reshapes the shortcut when needed."""
    y = g.relu(g.conv(x, channels, 3, stride=stride, bias=False, bn=bn))
    y = g.conv(y, channels, 3, bias=False, bn=bn)
    shortcut = x
    if stride != 1 or g.channels(x) != channels:
        shortcut = g.conv(x, channels, 1, stride=stride, bias=False, bn=bn)
    return g.relu(g.add(y, shortcut))


# (expansion t, output channels c, repeats n, first stride s), from the MobileNetV2 paper's Table 2.
_MBV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _divisible(v: float, by: int = 8) -> int:
    """Round a channel count to a multiple of ``by`` without losing more than 10%, as the reference model does."""
    out = max(by, int(v + by / 2) // by * by)
    return out + by if out < 0.9 * v else out


def mobilenet_v2_like(
    num_classes: int = 1000, width_mult: float = 1.0, seed: int = 0, *, features_only: bool = False
) -> bytes:
    """MobileNetV2: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear project) with ReLU6.

    It stands for the mobile-class models that are cheap in FLOPs but bound by memory traffic, whose latency scales
    with batch and CPU share differently from ResNet's.
    """
    _check(num_classes, width_mult=width_mult)
    g = GraphBuilder("mobilenet_v2_like", seed)
    x = g.input("input", 3)
    x = g.relu6(g.conv(x, _divisible(32 * width_mult), 3, stride=2, bn="fold"))
    for t, c, n, s in _MBV2_SETTINGS:
        out = _divisible(c * width_mult)
        for i in range(n):
            x = _inverted_residual(g, x, out, s if i == 0 else 1, t)
    x = g.relu6(g.conv(x, _divisible(1280 * max(1.0, width_mult)), 1, bn="fold"))
    return _finish(g, x, num_classes, features_only)


def _inverted_residual(g: GraphBuilder, x: str, out: int, stride: int, expand: int) -> str:
    cin = g.channels(x)
    y = x
    if expand != 1:
        y = g.relu6(g.conv(y, cin * expand, 1, bn="fold"))
    y = g.relu6(g.depthwise(y, 3, stride))
    y = g.conv(y, out, 1, bn="fold")  # linear bottleneck: no activation
    return g.add(y, x) if stride == 1 and cin == out else y


def _finish(g: GraphBuilder, x: str, num_classes: int, features_only: bool = False) -> bytes:
    if features_only:
        g.output(x, "features", spatial=True)
    else:
        g.output(g.gemm(g.global_avg_pool(x), num_classes), "logits")
    return g.to_bytes()
