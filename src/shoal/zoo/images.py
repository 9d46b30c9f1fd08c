"""Image preprocessing in NumPy alone: validate a decoded photo, resize it, and turn it into a normalised NCHW batch.

Vision pipelines spend real CPU time here (it scales with the input's pixel count, which is why input size matters to
the planner even when the model's input is fixed), and no imaging library is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "check_image", "fit_to_stride", "resize_bilinear", "to_nchw"]

#: ImageNet channel statistics (RGB), which torchvision's models and most vision backbones are trained with.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class _InputError(ValueError):
    """Stand-in used when the caller passes no error class (the zoo imports nothing of ``shoal.app``)."""


def check_image(img: Any, min_side: int = 8, error: type[Exception] = _InputError) -> np.ndarray:
    """Return ``img`` if it is an HxWx3 uint8 array with both sides at least ``min_side``; raise ``error`` if not.

    Applications pass ``error=shoal.InputError`` so that a bad image is answered with HTTP 400.
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        got = f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise error(f"expected an HxWx3 uint8 image, got a {got}")
    if img.shape[0] < min_side or img.shape[1] < min_side:
        raise error(f"image is {img.shape[0]}x{img.shape[1]}; it must be at least {min_side}x{min_side}")
    return img


def resize_bilinear(img: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Bilinear resize of an HxWxC float image to ``height`` x ``width`` (square if ``width`` is None).

    Pixel centres are aligned as in OpenCV's and PIL's ``INTER_LINEAR`` without antialiasing; done by index
    arithmetic, so it costs a few passes over the output.
    """
    width = height if width is None else width
    h, w = img.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def to_nchw(
    img: np.ndarray, mean: np.ndarray = IMAGENET_MEAN, std: np.ndarray = IMAGENET_STD, dtype: Any = np.float32
) -> np.ndarray:
    """An HxWx3 image with values in [0, 1] -> a normalised, C-contiguous 1x3xHxW batch of one."""
    x = (img - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=dtype)


def fit_to_stride(height: int, width: int, max_side: int, stride: int = 32, min_side: int = 64) -> tuple[int, int]:
    """The input size a detector-style pipeline resizes an image of ``height`` x ``width`` to.

    The image shrinks (never grows) so that its longer side is at most ``max_side``, keeping its aspect ratio; each
    side is then rounded to a multiple of ``stride`` (so every feature-map cell covers whole pixels), and at least
    ``min_side``. Small photos so stay small and cost the backbone less, as with real detectors, and photos of the same
    shape class land on the same size, so that they can share a batch.
    """
    if min(height, width, max_side, stride, min_side) < 1:
        raise ValueError(f"sizes must be positive, got {height}x{width}, max {max_side}, stride {stride}")
    scale = min(1.0, max_side / max(height, width))

    def side(n: int) -> int:
        return max(min_side, stride * max(1, math.ceil(n * scale / stride - 1e-9)))

    return min(side(height), _ceil_to(max_side, stride)), min(side(width), _ceil_to(max_side, stride))


def _ceil_to(n: int, m: int) -> int:
    return m * math.ceil(n / m)
