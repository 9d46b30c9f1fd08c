"""Detection and classification on one shared backbone: a multi-model DAG with a fan-out and a fan-in.

It stands for a camera or photo-moderation service that finds objects and tags the whole scene at once: the
expensive feature extractor runs once per image, two cheap heads read its feature map, and a final stage merges their
answers. Served fine, the heads scale apart from the backbone and can run side by side; served coarse, one instance
does it all with no hop.

::

    preprocess -> backbone -+-> detect ----+-> merge
                            +-> classify --+

- ``preprocess``: an HxWx3 uint8 photo (at least 32x32) is shrunk, keeping its aspect ratio, so that its longer side is
  at most ``MAX_SIDE`` pixels, and each side is rounded up to a multiple of 32 (as detectors do): small photos stay
  small and cost the backbone less, and photos of the same shape share a tensor size, so they can be batched.
- ``backbone``: MobileNetV2 without its classifier (SSDLite's backbone), ``(B, 3, H, W)`` -> ``(B, 1280, H/32, W/32)``.
- ``detect``: an SSD-style head (two 3x3 convolutions, box and class predictors for 3 anchors per cell), box decoding
  against the anchors, and the ``PRE_NMS`` best (box, class) candidates per image.
- ``classify``: global pooling, a 1000-way classifier, softmax and the top 5.
- ``merge``: class-wise non-maximum suppression of the candidates, then one response::

    {"detections": {"boxes": (n, 4) float32 [x0, y0, x1, y1] in [0, 1] of the image's width and height,
                    "scores": (n,) float32, "labels": (n,) int64},
     "classification": {"classes": (5,) int64, "scores": (5,) float32}}

Weights are random (nothing is downloaded), so boxes and labels are not meaningful; the compute and data flow are
those of the real thing. Serve it with, for example, the backbone beside its preprocessing and each head apart::

    shoal serve examples/multi_model.py --plan preprocess+backbone,detect,classify,merge
"""

from __future__ import annotations

from typing import Any

import numpy as np

import shoal

MAX_SIDE = 320  # the longest side of the backbone's input, in pixels (SSDLite uses 320x320)
MIN_SIDE = 32  # smaller photos are refused
STRIDE = 32  # the backbone's output stride
DET_CLASSES = 20  # PASCAL VOC's object classes
NUM_CLASSES = 1000  # ImageNet's scene/object classes
ANCHORS = ((1.0, 1.0), (2.0, 0.5), (0.5, 2.0))  # (width, height) factors of each cell's anchors: square, wide, tall
ANCHOR_SIZE = 4 * STRIDE  # the side of the square anchor, in input pixels
PRE_NMS = 100  # candidates per image handed from ``detect`` to ``merge``
SCORE_MIN = 0.05  # candidates below this score are dropped
IOU_MAX = 0.5  # overlap above which the weaker of two same-class boxes is suppressed
MAX_DETECTIONS = 20
TOP_K = 5
FEATURES = 1280  # MobileNetV2's last feature map
SEED = 0

app = shoal.App("multi-model", slo="p99:300ms", input=shoal.ArraySpec((None, None, 3), "uint8"))


def load_backbone() -> Any:
    from shoal.zoo import mobilenet_v2_like, onnx_session

    return onnx_session(mobilenet_v2_like(seed=SEED, features_only=True))


def load_detector() -> Any:
    from shoal.zoo import detection_head, onnx_session

    return onnx_session(detection_head(FEATURES, DET_CLASSES, anchors=len(ANCHORS), width=128, seed=SEED + 1))


def load_classifier() -> Any:
    from shoal.zoo import classification_head, onnx_session

    return onnx_session(classification_head(FEATURES, NUM_CLASSES, seed=SEED + 2))


@app.stage(vcpu=1, memory_mb=256)
def preprocess(img: Any) -> np.ndarray:
    """HxWx3 uint8 photo -> normalised 1x3xH'xW' float32, H' and W' multiples of 32, the longer at most MAX_SIDE."""
    from shoal.zoo.images import check_image, fit_to_stride, resize_bilinear, to_nchw

    check_image(img, MIN_SIDE, shoal.InputError)
    h, w = fit_to_stride(img.shape[0], img.shape[1], MAX_SIDE, STRIDE)
    return to_nchw(resize_bilinear(img.astype(np.float32) / 255.0, h, w))


@app.stage(after=preprocess, load=load_backbone, vcpu=1, memory_mb=256, batch=True)
def backbone(session: Any, x: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) -> (B, 1280, H/32, W/32) feature maps."""
    return session.run(["features"], {"input": x})[0]


def anchors(h: int, w: int) -> np.ndarray:
    """``(h * w * len(ANCHORS), 4)`` anchor boxes (cx, cy, w, h), normalised to the input, in (row, col, anchor)
    order: the order of the head's outputs once moved channels-last."""
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    sizes = np.array([(fw * ANCHOR_SIZE / (w * STRIDE), fh * ANCHOR_SIZE / (h * STRIDE)) for fw, fh in ANCHORS])
    centres = np.stack([cx, cy], axis=-1)[:, :, None, :].repeat(len(ANCHORS), axis=2)
    wh = np.broadcast_to(sizes, (h, w, len(ANCHORS), 2))
    return np.concatenate([centres, wh], axis=-1).reshape(-1, 4)


def decode_boxes(deltas: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """SSD's box coding (variances 0.1 and 0.2): ``(..., 4)`` (dx, dy, dw, dh) -> (x0, y0, x1, y1) clipped to [0, 1]."""
    cxcy = anchor[:, :2] + deltas[..., :2] * 0.1 * anchor[:, 2:]
    wh = anchor[:, 2:] * np.exp(np.clip(deltas[..., 2:] * 0.2, -10.0, 4.0))
    return np.clip(np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=-1), 0.0, 1.0)


@app.stage(after=backbone, load=load_detector, vcpu=1, memory_mb=128, batch=True)
def detect(session: Any, features: np.ndarray) -> dict[str, np.ndarray]:
    """Feature maps -> per image the PRE_NMS best candidates: boxes (B, K, 4), scores (B, K), labels (B, K)."""
    deltas, scores = session.run(["boxes", "scores"], {"features": features})
    b, _, h, w = deltas.shape
    a = len(ANCHORS)
    deltas = deltas.reshape(b, a, 4, h, w).transpose(0, 3, 4, 1, 2).reshape(b, h * w * a, 4)
    scores = scores.reshape(b, a, DET_CLASSES, h, w).transpose(0, 3, 4, 1, 2).reshape(b, h * w * a * DET_CLASSES)
    boxes = decode_boxes(deltas, anchors(h, w))
    k = min(PRE_NMS, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best = np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable"), 1)
    return {
        "boxes": np.take_along_axis(boxes, (best // DET_CLASSES)[:, :, None], 1).astype(np.float32),
        "scores": np.take_along_axis(scores, best, 1).astype(np.float32),
        "labels": (best % DET_CLASSES).astype(np.int64),
    }


@app.stage(after=backbone, load=load_classifier, vcpu=0.5, memory_mb=128, batch=True)
def classify(session: Any, features: np.ndarray) -> dict[str, np.ndarray]:
    """Feature maps -> the TOP_K classes (B, 5) and their softmax probabilities (B, 5), best first."""
    z = session.run(["logits"], {"features": features})[0].astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top = np.argsort(-p, axis=1, kind="stable")[:, :TOP_K]
    return {"classes": top.astype(np.int64), "scores": np.take_along_axis(p, top, 1).astype(np.float32)}


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices kept by greedy class-wise non-maximum suppression, best first (at most MAX_DETECTIONS)."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size and len(keep) < MAX_DETECTIONS:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[(iou <= IOU_MAX) | (labels[rest] != labels[i])]
    return np.array(keep, np.int64)


@app.stage(after=(detect, classify), vcpu=0.25, memory_mb=128)
def merge(detections: dict[str, np.ndarray], classes: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Suppress overlapping candidates and combine both heads' answers into one response."""
    boxes, scores, labels = detections["boxes"][0], detections["scores"][0], detections["labels"][0]
    ok = scores >= SCORE_MIN
    boxes, scores, labels = boxes[ok], scores[ok], labels[ok]
    keep = nms(boxes, scores, labels)
    return {
        "detections": {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]},
        "classification": {"classes": classes["classes"][0], "scores": classes["scores"][0]},
    }
