"""ResNet-50, backbones cut before their classifier, and the heads that run on their feature maps."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from shoal.zoo import (
    GraphBuilder,
    classification_head,
    detection_head,
    mobilenet_v2_like,
    onnx_session,
    resnet18_like,
    resnet50_like,
)


def _params(model: bytes) -> int:
    return sum(int(np.prod(t.dims)) for t in onnx.load_from_string(model).graph.initializer)


def _x(n: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def test_full_width_resnet50_has_resnet50_parameter_count() -> None:
    proto = onnx.load_from_string(resnet50_like())
    onnx.checker.check_model(proto)
    n = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    # torchvision's resnet50 has 25,557,032 parameters; BatchNorm running statistics add 2 x 26,560 here.
    assert n == 25_557_032 + 2 * 26_560
    assert sum(node.op_type == "Conv" for node in proto.graph.node) == 53  # stem + 16 blocks x 3 + 4 projections
    assert sum(node.op_type == "Add" for node in proto.graph.node) == 16  # one residual sum per bottleneck block


def test_narrow_resnet50_is_valid_dynamic_and_deterministic() -> None:
    model = resnet50_like(num_classes=10, width=8, seed=3)
    onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
    assert model == resnet50_like(num_classes=10, width=8, seed=3)
    assert model != resnet50_like(num_classes=10, width=8, seed=4)
    sess = onnx_session(model)
    for size in (32, 64, 97):
        y = sess.run(["logits"], {"input": _x(2, 3, size, size)})[0]
        assert y.shape == (2, 10) and np.isfinite(y).all()
    both = sess.run(["logits"], {"input": _x(3, 3, 64, 64, seed=1)})[0]
    one = sess.run(["logits"], {"input": _x(3, 3, 64, 64, seed=1)[2:]})[0]
    np.testing.assert_allclose(both[2:], one, rtol=1e-4, atol=1e-4)
    # Folding BatchNorm into the convolutions removes its statistics and changes nothing else about the shape.
    folded = resnet50_like(num_classes=10, width=8, fold_bn=True)
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load_from_string(folded).graph.node)
    assert onnx_session(folded).run(["logits"], {"input": _x(1, 3, 64, 64)})[0].shape == (1, 10)


@pytest.mark.parametrize(
    ("build", "channels"),
    [
        (lambda: resnet18_like(width=8, features_only=True), 64),
        (lambda: resnet50_like(width=8, features_only=True), 256),
        (lambda: mobilenet_v2_like(width_mult=0.25, features_only=True), 1280),
    ],
)
def test_features_only_returns_the_stride_32_feature_map(build, channels: int) -> None:
    model = build()
    proto = onnx.load_from_string(model)
    (out,) = proto.graph.output
    assert out.name == "features" and len(out.type.tensor_type.shape.dim) == 4
    assert not any(n.op_type in ("Gemm", "GlobalAveragePool") for n in proto.graph.node)
    y = onnx_session(model).run(["features"], {"input": _x(2, 3, 96, 160)})[0]
    assert y.shape == (2, channels, 3, 5)


def test_detection_head_predicts_boxes_and_scores_per_anchor_and_cell() -> None:
    model = detection_head(64, num_classes=7, anchors=3, width=32)
    onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
    boxes, scores = onnx_session(model).run(["boxes", "scores"], {"features": _x(2, 64, 4, 6)})
    assert boxes.shape == (2, 12, 4, 6) and scores.shape == (2, 21, 4, 6)
    assert ((scores > 0) & (scores < 1)).all() and boxes.std() > 0
    assert model == detection_head(64, num_classes=7, anchors=3, width=32)
    assert _params(model) == 64 * 32 * 9 + 32 + 32 * 32 * 9 + 32 + 32 * 12 + 12 + 32 * 21 + 21
    with pytest.raises(ValueError, match="anchors"):
        detection_head(64, anchors=0)


def test_classification_head_pools_any_map() -> None:
    sess = onnx_session(classification_head(16, num_classes=5))
    for h, w in [(1, 1), (3, 7)]:
        assert sess.run(["logits"], {"features": _x(3, 16, h, w)})[0].shape == (3, 5)
    with pytest.raises(ValueError, match="num_classes"):
        classification_head(16, num_classes=0)


def test_builder_declares_spatial_outputs() -> None:
    g = GraphBuilder("spatial")
    x = g.input("input", 3)
    g.output(g.conv(x, 4, 3), "map", spatial=True)
    (out,) = g.model().graph.output
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 4, "map_h", "map_w"]
