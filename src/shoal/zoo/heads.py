"""Task heads that run on a backbone's feature map as models of their own, for multi-model pipelines.

A shared backbone (``resnet18_like(..., features_only=True)`` and the like) computes ``features`` once, and several
heads read it: that is the shape of a detection + classification service, where the backbone is the expensive part
and the heads are cheap models that can be deployed, scaled and batched separately. Both heads take ``features``
``(N, C, h, w)`` float32 with dynamic ``N``, ``h`` and ``w``.
"""

from __future__ import annotations

from shoal.zoo.onnx_builder import GraphBuilder

__all__ = ["classification_head", "detection_head"]


def detection_head(
    in_channels: int, num_classes: int = 20, anchors: int = 3, width: int = 128, depth: int = 2, seed: int = 0
) -> bytes:
    """A single-stage detector's head (SSD / RetinaNet style) on one feature map.

    ``depth`` 3x3 convolutions of ``width`` channels with ReLU feed two 1x1 predictors: ``boxes``
    ``(N, anchors * 4, h, w)``, the box regressions (dx, dy, dw, dh) of every anchor at every cell, and ``scores``
    ``(N, anchors * num_classes, h, w)``, per-class probabilities (sigmoid, as in RetinaNet's focal-loss detectors).
    Decoding the regressions against the anchors and non-maximum suppression are post-processing, not part of the
    model.
    """
    for name, v in {"in_channels": in_channels, "num_classes": num_classes, "anchors": anchors, "width": width}.items():
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth!r}")
    g = GraphBuilder("detection_head", seed)
    x = g.input("features", in_channels)
    for _ in range(depth):
        x = g.relu(g.conv(x, width, 3))
    g.output(g.conv(x, anchors * 4, 1), "boxes", spatial=True)
    g.output(g.sigmoid(g.conv(x, anchors * num_classes, 1)), "scores", spatial=True)
    return g.to_bytes()


def classification_head(in_channels: int, num_classes: int = 1000, seed: int = 0) -> bytes:
    """Global average pooling and a fully connected layer: ``features`` -> ``logits`` ``(N, num_classes)``."""
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels!r} and {num_classes!r}")
    g = GraphBuilder("classification_head", seed)
    x = g.input("features", in_channels)
    g.output(g.gemm(g.global_avg_pool(x), num_classes), "logits")
    return g.to_bytes()
