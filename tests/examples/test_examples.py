"""The example applications load by path, give outputs of the documented types, and the tabular one is accurate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import shoal
from shoal.app import StageFailed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    """Import an example file by path, as ``shoal serve`` does."""
    spec = importlib.util.spec_from_file_location(f"shoal_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def image() -> ModuleType:
    return _load("image_pipeline")


@pytest.fixture(scope="module")
def tabular() -> ModuleType:
    return _load("tabular_pipeline")


def _photo(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise, shaped and typed like a decoded JPEG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 128.0)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def test_every_example_defines_a_valid_app() -> None:
    examples = [("image_pipeline", 3), ("tabular_pipeline", 2), ("noop", 1), ("multi_model", 5), ("text_pipeline", 3)]
    for name, stages in examples:
        app = _load(name).app
        assert isinstance(app, shoal.App)
        app.validate()
        assert len(app.stages) == stages


def test_image_pipeline_returns_top5(image: ModuleType) -> None:
    out = image.app.run(_photo())
    assert set(out) == {"classes", "scores"}
    classes, scores = out["classes"], out["scores"]
    assert classes.dtype == np.int64 and classes.shape == (5,)
    assert scores.dtype == np.float32 and scores.shape == (5,)
    assert len(set(classes.tolist())) == 5 and ((classes >= 0) & (classes < image.NUM_CLASSES)).all()
    assert (np.diff(scores) <= 0).all() and 0 < scores.sum() <= 1 + 1e-6


def test_image_pipeline_is_deterministic_and_sees_the_image(image: ModuleType) -> None:
    a, b = image.app.run(_photo(seed=1)), image.app.run(_photo(seed=1))
    np.testing.assert_array_equal(a["scores"], b["scores"])
    np.testing.assert_array_equal(a["classes"], b["classes"])
    other = image.app.run(np.ascontiguousarray(_photo(seed=1)[::-1, ::-1]))
    assert not np.array_equal(a["scores"], other["scores"])


def test_preprocess_resizes_any_size_to_the_backbone_input(image: ModuleType) -> None:
    for h, w in [(8, 8), (64, 64), (33, 200), (1080, 1920)]:
        x = image.preprocess(_photo(h, w))
        assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous


def test_preprocess_keeps_a_uniform_image_uniform(image: ModuleType) -> None:
    x = image.preprocess(np.full((20, 30, 3), 200, np.uint8))
    expected = (200 / 255 - image._MEAN) / image._STD
    np.testing.assert_allclose(x[0].reshape(3, -1), np.repeat(expected[:, None], 64 * 64, axis=1), rtol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64, 3), np.float32),  # wrong dtype
        np.zeros((64, 64), np.uint8),  # grey
        np.zeros((64, 64, 4), np.uint8),  # RGBA
        np.zeros((7, 64, 3), np.uint8),  # too small
        [[1, 2, 3]],  # not an array
    ],
)
def test_bad_image_is_an_input_error(image: ModuleType, bad: object) -> None:
    with pytest.raises(shoal.InputError):
        image.preprocess(bad)
    with pytest.raises(StageFailed) as info:
        image.app.run(bad)
    assert info.value.stage == "preprocess" and isinstance(info.value.error, shoal.InputError)


def test_tabular_pipeline_is_accurate_on_held_out_data(tabular: ModuleType) -> None:
    _, x_te, _, y_te = tabular.training_data()
    out = tabular.app.run(x_te)
    assert out["label"].dtype == np.int64 and out["label"].shape == (len(x_te),)
    assert out["proba"].shape == (len(x_te), 2) and np.issubdtype(out["proba"].dtype, np.floating)
    np.testing.assert_allclose(out["proba"].sum(axis=1), 1.0, rtol=1e-9)
    accuracy = float((out["label"] == y_te).mean())
    assert accuracy > 0.9, accuracy


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 29)), np.zeros(30), np.full((2, 30), np.nan), np.array([["a"] * 30]), "x"]
)
def test_tabular_refuses_bad_features(tabular: ModuleType, bad: object) -> None:
    with pytest.raises(StageFailed) as info:
        tabular.app.run(bad)
    assert isinstance(info.value.error, shoal.InputError)


def test_noop_returns_its_input() -> None:
    app = _load("noop").app
    x = {"a": np.arange(3), "b": [1, "two", None]}
    assert app.run(x) is x
