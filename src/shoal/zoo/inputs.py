"""Realistic request inputs of varying size for each example application, for profiles and benchmarks.

Input size changes latency where the real task's does: a 640x480 photo costs more to decode-side resize (and, in
the detector, to run) than a 64x64 thumbnail, and a 200-word review more to encode than a 3-word query. So the
samples vary in size the way real traffic does, deterministically for a seed:

- images (``image``, ``resnet18``, ``resnet50``, ``mobilenet-v2``, ``multi-model``): HxWx3 uint8 photos of common
  resolutions from 64x64 to 640x480, in both orientations, with smooth backgrounds, a few objects and sensor noise;
- ``text``: one English string of 3 to 200 words (log-uniform: most requests are short, a few are long), on one of
  several topics;
- ``tabular``: ``(rows, 30)`` float64 arrays of real rows of the breast-cancer data set, 1 to 32 rows;
- ``noop``: float32 arrays of 16 B to 1 MiB.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["APPS", "IMAGE_SIZES", "TEXT_WORDS", "input_size", "sample_image", "sample_inputs", "sample_text"]

#: Photo sizes (height, width): thumbnails, CIFAR/ImageNet crops, QVGA, VGA, and the usual camera aspect ratios.
IMAGE_SIZES = (
    (64, 64),
    (96, 96),
    (120, 160),
    (128, 128),
    (160, 120),
    (224, 224),
    (240, 320),
    (256, 256),
    (320, 240),
    (300, 400),
    (375, 500),
    (360, 480),
    (480, 360),
    (500, 375),
    (480, 640),
    (640, 480),
)
#: The fewest and most words of a sample text.
TEXT_WORDS = (3, 200)

_IMAGE_APPS = ("image", "resnet18", "resnet50", "mobilenet-v2", "multi-model")
#: The application names that :func:`sample_inputs` knows.
APPS = (*_IMAGE_APPS, "text", "tabular", "noop")

_TOPICS = {
    "sports": "team match goal season player league cup final score coach win won lost game fans stadium",
    "politics": "election vote president minister party policy government law court parliament campaign debate",
    "business": "market stock share price company bank rate growth tax budget profit sales investors economy",
    "technology": "software phone computer internet network data model chip app update users cloud system",
    "science": "research study scientists data experiment energy space planet cells climate physics results",
    "health": "doctor patient hospital drug disease treatment health study vaccine symptoms care trial",
    "entertainment": "film music show actor album concert series festival star movie audience stage",
    "travel": "trip hotel city flight beach mountain river tour visitors weather road travel guide",
}
_FILLER_TEXT = (
    "the a of and to in is was with for on after new first this that their its by from at more than most some many "
    "it has have said will could very also over"
)
_FILLER = tuple(_FILLER_TEXT.split())


def sample_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like HxWx3 uint8 image: a colour gradient, a few flat-coloured objects, and Gaussian noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (xx / max(width - 1, 1) * rng.uniform(0.2, 0.8) + yy / max(height - 1, 1) * rng.uniform(0.2, 0.8))[..., None]
    img = c0 * (1 - t / 1.6) + c1 * (t / 1.6)
    for _ in range(int(rng.integers(1, 6))):
        h, w = int(rng.integers(height // 8 + 1, height // 2 + 2)), int(rng.integers(width // 8 + 1, width // 2 + 2))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        img[y : y + h, x : x + w] = rng.uniform(0, 255, 3)
    img += rng.normal(0.0, 8.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_text(rng: np.random.Generator, words: int) -> str:
    """About ``words`` words of sentences on one topic (topic words mixed with function words)."""
    topic = list(_TOPICS.values())[int(rng.integers(len(_TOPICS)))].split()
    out: list[str] = []
    while len(out) < words:
        n = min(int(rng.integers(4, 18)), words - len(out))
        sentence = [str(rng.choice(topic)) if rng.random() < 0.5 else str(rng.choice(_FILLER)) for _ in range(n)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "." if rng.random() < 0.8 else ("?" if rng.random() < 0.5 else "!")
        if n > 8 and rng.random() < 0.5:
            sentence[n // 2] += ","
        out += sentence
    return " ".join(out)


def sample_inputs(app_name: str, n: int, seed: int = 0) -> list[Any]:
    """``n`` inputs for the example application named ``app_name`` (see :data:`APPS`), of varying size."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    rng = np.random.default_rng(seed)
    if app_name in _IMAGE_APPS:
        sizes = [IMAGE_SIZES[int(i)] for i in rng.integers(0, len(IMAGE_SIZES), n)]
        return [sample_image(rng, h, w) for h, w in sizes]
    if app_name == "text":
        lo, hi = TEXT_WORDS
        counts = np.exp(rng.uniform(math.log(lo), math.log(hi + 1), n)).astype(int).clip(lo, hi)
        return [sample_text(rng, int(c)) for c in counts]
    if app_name == "tabular":
        from sklearn.datasets import load_breast_cancer

        x = load_breast_cancer().data
        return [x[rng.integers(0, len(x), int(k))] for k in np.exp(rng.uniform(0, math.log(33), n)).astype(int)]
    if app_name == "noop":
        return [
            rng.standard_normal(int(k)).astype(np.float32) for k in np.exp(rng.uniform(math.log(4), math.log(2**18), n))
        ]
    raise ValueError(f"no sample inputs for app {app_name!r}; known: {', '.join(APPS)}")


def input_size(x: Any) -> int:
    """A size measure of one input, for plotting latency against it: pixels of an image, words of a text (or of all
    texts of a list), rows of a 2-D array, elements of any other array, else 1."""
    if isinstance(x, str):
        return len(x.split())
    if isinstance(x, (list, tuple)) and all(isinstance(t, str) for t in x):
        return sum(len(t.split()) for t in x)
    if isinstance(x, np.ndarray):
        if x.ndim == 3 and x.shape[2] == 3:
            return int(x.shape[0] * x.shape[1])
        return int(x.shape[0]) if x.ndim == 2 else int(x.size)
    return 1
