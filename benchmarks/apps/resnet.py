"""One stage: a ResNet-18-shaped CNN (``shoal.zoo.resnet18_like``, 1000 classes, seeded random weights) in ONNX Runtime.

The cold-start benchmark serves it to measure a cold start whose model load is real work (about 47 MB of weights
built and opened per instance). Inputs are NCHW float32 batches of any height and width.

    shoal serve benchmarks/apps/resnet.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

import shoal

app = shoal.App("resnet", slo="p99:1s", input=shoal.ArraySpec((None, 3, None, None), "float32"))


def load_model() -> Any:
    from shoal.zoo import onnx_session, resnet18_like

    return onnx_session(resnet18_like(num_classes=1000, seed=0))


@app.stage(load=load_model, vcpu=1, memory_mb=1024)
def classify(session: Any, x: np.ndarray) -> np.ndarray:
    return session.run(["logits"], {"input": x})[0]
