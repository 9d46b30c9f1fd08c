"""Sample inputs vary in size as real traffic does, and are reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.zoo import sample_inputs
from shoal.zoo.inputs import APPS, IMAGE_SIZES, TEXT_WORDS, input_size


def test_every_vision_app_gets_the_same_photos() -> None:
    first = sample_inputs("image", 2, seed=1)
    for app in ["resnet18", "resnet50", "mobilenet-v2", "multi-model"]:
        assert all(np.array_equal(a, b) for a, b in zip(first, sample_inputs(app, 2, seed=1), strict=True))


def test_images_are_photos_of_many_sizes() -> None:
    xs = sample_inputs("image", 30, seed=1)
    assert len(xs) == 30
    for x in xs:
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
        assert min(x.shape[:2]) >= 64 and max(x.shape[:2]) <= 640 and x.shape[0] * x.shape[1] <= 640 * 480
        assert x.std() > 10  # not blank
    sizes = {x.shape[:2] for x in xs}
    assert len(sizes) >= 8 and sizes <= set(IMAGE_SIZES)


def test_texts_range_from_a_few_words_to_a_few_hundred() -> None:
    xs = sample_inputs("text", 200, seed=2)
    words = [len(x.split()) for x in xs]
    assert all(isinstance(x, str) for x in xs)
    assert min(words) >= TEXT_WORDS[0] and max(words) <= TEXT_WORDS[1]
    assert min(words) <= 5 and max(words) >= 120 and np.median(words) < 60  # mostly short, some long
    assert words == [input_size(x) for x in xs]


def test_tabular_and_noop() -> None:
    rows = [x.shape[0] for x in sample_inputs("tabular", 30, seed=0)]
    assert all(x.shape[1:] == (30,) and x.dtype == np.float64 for x in sample_inputs("tabular", 5, seed=0))
    assert min(rows) >= 1 and max(rows) <= 32 and len(set(rows)) > 5
    sizes = [x.nbytes for x in sample_inputs("noop", 50, seed=0)]
    assert min(sizes) >= 16 and max(sizes) <= 2**20 and max(sizes) > 100 * min(sizes)


@pytest.mark.parametrize("app", APPS)
def test_same_seed_same_inputs(app: str) -> None:
    a, b, c = sample_inputs(app, 3, seed=4), sample_inputs(app, 3, seed=4), sample_inputs(app, 3, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) if np.shape(x) == np.shape(y) else False for x, y in zip(a, c, strict=True))


def test_unknown_app_and_bad_count() -> None:
    with pytest.raises(ValueError, match="known: image"):
        sample_inputs("video", 1)
    with pytest.raises(ValueError, match="n must be"):
        sample_inputs("text", -1)
    assert sample_inputs("text", 0) == []


def test_input_size() -> None:
    assert input_size(np.zeros((48, 64, 3), np.uint8)) == 48 * 64
    assert input_size("three short words") == 3 and input_size(["a b", "c"]) == 3
    assert input_size(np.zeros((7, 30))) == 7 and input_size(np.zeros(5)) == 5 and input_size(None) == 1
