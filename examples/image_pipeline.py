"""Image classification in three stages: decode-side preprocessing, a CNN backbone, and a top-5 head.

It stands for the common vision pipeline where a cheap CPU stage and a tiny head sit around one model: served
coarse, one instance must be sized for the model; served fine, the model scales on its own but pays two data hops.

Serve it with ``shoal serve examples/image_pipeline.py --plan fine``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import shoal

SIZE = 64  # the backbone's input height and width
NUM_CLASSES = 100
TOP_K = 5
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet channel statistics
_STD = np.array([0.229, 0.224, 0.225], np.float32)

app = shoal.App("image", slo="p99:500ms", input=shoal.ArraySpec((None, None, 3), "uint8"))


def load_model() -> Any:
    """Build the CNN and open it once per instance: this is the instance's cold start."""
    # Imported here so that reading the app's stage graph (the gateway does) does not load ONNX Runtime.
    from shoal.zoo import onnx_session, small_cnn

    return onnx_session(small_cnn(num_classes=NUM_CLASSES, seed=0))


def _resize_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an HxWxC float image to size x size, by index arithmetic (no imaging library needed)."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


@app.stage(vcpu=1, memory_mb=256)
def preprocess(img: Any) -> np.ndarray:
    """HxWx3 uint8 image -> normalised 1x3xSIZExSIZE float32 batch."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        got = f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise shoal.InputError(f"expected an HxWx3 uint8 image, got a {got}")
    if img.shape[0] < 8 or img.shape[1] < 8:
        raise shoal.InputError(f"image is {img.shape[0]}x{img.shape[1]}; it must be at least 8x8")
    x = _resize_bilinear(img.astype(np.float32) / 255.0, SIZE)
    x = (x - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


@app.stage(after=preprocess, load=load_model, vcpu=1, memory_mb=512)
def backbone(session: Any, x: np.ndarray) -> np.ndarray:
    """Run the CNN: 1x3xSIZExSIZE -> 1xNUM_CLASSES logits."""
    return session.run(["logits"], {"input": x})[0]


@app.stage(after=backbone, vcpu=0.25, memory_mb=128)
def head(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Softmax and the TOP_K most likely classes, best first."""
    z = logits[0].astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    top = np.argsort(-p, kind="stable")[:TOP_K]
    return {"classes": top.astype(np.int64), "scores": p[top].astype(np.float32)}
