"""NumPy image preprocessing: validation, resizing, normalisation and detector-style input sizes."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.zoo.images import IMAGENET_MEAN, IMAGENET_STD, check_image, fit_to_stride, resize_bilinear, to_nchw


class Refused(ValueError):
    pass


def test_check_image_raises_the_callers_error() -> None:
    img = np.zeros((40, 50, 3), np.uint8)
    assert check_image(img, 32, Refused) is img
    for bad in [np.zeros((31, 50, 3), np.uint8), np.zeros((40, 50), np.uint8), np.zeros((40, 50, 3)), [1, 2]]:
        with pytest.raises(Refused):
            check_image(bad, 32, Refused)
    with pytest.raises(ValueError):
        check_image("nope")


def test_resize_keeps_constants_and_hits_the_size() -> None:
    img = np.full((37, 91, 3), 0.25, np.float32)
    out = resize_bilinear(img, 20, 30)
    assert out.shape == (20, 30, 3)
    np.testing.assert_allclose(out, 0.25, rtol=1e-6)
    ramp = np.tile(np.arange(8, dtype=np.float64)[None, :, None], (2, 1, 1))
    np.testing.assert_allclose(resize_bilinear(ramp, 2, 4)[0, :, 0], [0.5, 2.5, 4.5, 6.5])  # pixel-centre aligned
    assert resize_bilinear(img, 16).shape == (16, 16, 3)


def test_to_nchw_normalises() -> None:
    x = to_nchw(np.full((4, 5, 3), 0.5, np.float32))
    assert x.shape == (1, 3, 4, 5) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[0, :, 0, 0], (0.5 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)


@pytest.mark.parametrize(
    ("h", "w", "want"),
    [
        (480, 640, (256, 320)),
        (640, 480, (320, 256)),
        (100, 100, (128, 128)),
        (32, 40, (64, 64)),
        (2000, 100, (320, 64)),
    ],
)
def test_fit_to_stride(h: int, w: int, want: tuple[int, int]) -> None:
    got = fit_to_stride(h, w, max_side=320, stride=32, min_side=64)
    assert got == want and all(s % 32 == 0 for s in got)


def test_fit_to_stride_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_to_stride(0, 10, 320)
