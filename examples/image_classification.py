"""ImageNet-style classification with real backbone shapes: ResNet-18, ResNet-50 and MobileNetV2.

Each app is ``preprocess`` (validate, bilinear resize to SIZE x SIZE, normalise) -> ``backbone`` (the full network in
ONNX Runtime, declared batchable) -> ``head`` (softmax and top-5). They stand for a photo-tagging or content-moderation
service: the same pipeline around models of very different cost (about 0.3, 1.8 and 4.1 GFLOPs per 224x224 image),
so that the best granularity and batch size differ between them. Weights are random (nothing is downloaded); the
compute is that of the real models.

The file defines three apps, so name the one to serve:

    shoal serve examples/image_classification.py:resnet50 --plan fine
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import shoal

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # image_pipeline.py is a neighbour, not a package

from image_pipeline import image_app  # noqa: E402 (after the sys.path line above)

#: Input height and width of every backbone: 224, the standard ImageNet evaluation size. On one core of the
#: development machine the backbones then take about 6 ms (MobileNetV2), 24 ms (ResNet-18) and 57 ms (ResNet-50) per
#: image; 160 would roughly halve that, at the cost of no longer matching the published models' cost.
SIZE = 224
#: The smallest photo accepted; smaller ones are refused with an InputError (HTTP 400).
MIN_SIDE = 32
NUM_CLASSES = 1000
TOP_K = 5


def _model(kind: str) -> bytes:
    from shoal.zoo import mobilenet_v2_like, resnet18_like, resnet50_like

    build = {"resnet18": resnet18_like, "resnet50": resnet50_like, "mobilenet-v2": mobilenet_v2_like}[kind]
    return build(num_classes=NUM_CLASSES, seed=0)


def _app(name: str, slo: str, memory_mb: int) -> shoal.App:
    return image_app(
        name,
        functools.partial(_model, name),
        size=SIZE,
        min_side=MIN_SIDE,
        num_classes=NUM_CLASSES,
        top_k=TOP_K,
        slo=slo,
        backbone_memory_mb=memory_mb,
    )


#: For `shoal profile`: the backbone's GPU behaviour comes from the measured V100 table (docs/profiles.md), whose
#: torchvision models these backbones reproduce in shape.
GPU_MODELS = {
    "resnet18/backbone": "resnet18_like",
    "resnet50/backbone": "resnet50_like",
    "mobilenet-v2/backbone": "mobilenet_v2_like",
}

resnet18 = _app("resnet18", "p99:200ms", 512)
resnet50 = _app("resnet50", "p99:400ms", 768)
mobilenet_v2 = _app("mobilenet-v2", "p99:100ms", 256)
