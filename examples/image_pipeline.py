"""Image classification in three stages: decode-side preprocessing, a CNN backbone, and a top-5 head.

It stands for the common vision pipeline where a cheap CPU stage and a tiny head sit around one model: served
coarse, one instance must be sized for the model; served fine, the model scales on its own but pays two data hops.

``app`` uses a small CNN on 64x64 inputs. :func:`image_app` builds the same pipeline around any backbone of
``shoal.zoo`` (``examples/image_classification.py`` uses it for ResNet-18, ResNet-50 and MobileNetV2).

Serve it with ``shoal serve examples/image_pipeline.py --plan fine``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import shoal

SIZE = 64  # the backbone's input height and width
NUM_CLASSES = 100
TOP_K = 5
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet channel statistics
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def image_app(
    name: str,
    model: Callable[[], bytes],
    *,
    size: int = SIZE,
    min_side: int = 8,
    num_classes: int = NUM_CLASSES,
    top_k: int = TOP_K,
    slo: str = "p99:500ms",
    backbone_vcpu: float = 1.0,
    backbone_memory_mb: int = 512,
    batch: bool = True,
) -> shoal.App:
    """The three-stage pipeline ``preprocess`` -> ``backbone`` -> ``head`` around ``model``.

    ``model()`` returns a serialized ONNX classifier (input ``input``, NCHW float32; output ``logits``,
    ``(N, num_classes)``); it is called in the backbone's ``load``, once per instance, so building it is part of the
    cold start. Any HxWx3 uint8 image with both sides at least ``min_side`` is resized to ``size`` x ``size``.

    With ``batch=True`` the backbone is declared batchable: it takes a stacked ``(B, 3, size, size)`` batch and
    returns ``(B, num_classes)`` logits, so the runtime may run several requests' images in one call.
    """
    app = shoal.App(name, slo=slo, input=shoal.ArraySpec((None, None, 3), "uint8"))

    def load_model() -> Any:
        """Build the CNN and open it once per instance: this is the instance's cold start."""
        # Imported here so that reading the app's stage graph (the gateway does) does not load ONNX Runtime.
        from shoal.zoo import onnx_session

        return onnx_session(model())

    @app.stage(vcpu=1, memory_mb=256)
    def preprocess(img: Any) -> np.ndarray:
        """HxWx3 uint8 image -> normalised 1x3xSIZExSIZE float32 batch."""
        from shoal.zoo.images import check_image, resize_bilinear, to_nchw

        check_image(img, min_side, shoal.InputError)
        return to_nchw(resize_bilinear(img.astype(np.float32) / 255.0, size), _MEAN, _STD)

    @app.stage(after=preprocess, load=load_model, vcpu=backbone_vcpu, memory_mb=backbone_memory_mb, batch=batch)
    def backbone(session: Any, x: np.ndarray) -> np.ndarray:
        """Run the CNN: Bx3xSIZExSIZE -> BxNUM_CLASSES logits."""
        return session.run(["logits"], {"input": x})[0]

    @app.stage(after=backbone, vcpu=0.25, memory_mb=128)
    def head(logits: np.ndarray) -> dict[str, np.ndarray]:
        """Softmax and the top_k most likely classes, best first."""
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        top = np.argsort(-p, kind="stable")[:top_k]
        return {"classes": top.astype(np.int64), "scores": p[top].astype(np.float32)}

    return app


def _small_cnn() -> bytes:
    from shoal.zoo import small_cnn

    return small_cnn(num_classes=NUM_CLASSES, seed=0)


# The original example, unchanged: a small CNN at 64x64, backbone not declared batchable.
app = image_app("image", _small_cnn, batch=False)
preprocess, backbone, head = app["preprocess"], app["backbone"], app["head"]
