"""The ResNet-18, ResNet-50 and MobileNetV2 classification apps: any photo size in, a top-5 out, batch-safe."""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np
import pytest

import shoal
from shoal.app import StageFailed
from shoal.zoo import mobilenet_v2_like, resnet18_like, resnet50_like, sample_inputs

SIZES = [(32, 32), (64, 64), (33, 200), (480, 640), (640, 480)]


@pytest.fixture(scope="module")
def mod(example) -> ModuleType:
    return example("image_classification")


@pytest.fixture(scope="module")
def narrow(mod: ModuleType, example, loaded):
    """The three pipelines around narrow backbones (same topology, a fraction of the channels) at a small size."""
    image_app = example("image_pipeline").image_app
    builds = {
        "resnet18": functools.partial(resnet18_like, num_classes=50, width=8),
        "resnet50": functools.partial(resnet50_like, num_classes=50, width=8),
        "mobilenet-v2": functools.partial(mobilenet_v2_like, num_classes=50, width_mult=0.25),
    }
    return {
        name: loaded(image_app(name, build, size=96, min_side=mod.MIN_SIDE, num_classes=50))
        for name, build in builds.items()
    }


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_the_file_defines_three_apps_with_a_batchable_backbone(mod: ModuleType) -> None:
    apps = {"resnet18": mod.resnet18, "resnet50": mod.resnet50, "mobilenet-v2": mod.mobilenet_v2}
    for name, app in apps.items():
        assert isinstance(app, shoal.App) and app.name == name
        app.validate()
        assert list(app.stages) == ["preprocess", "backbone", "head"]
        assert [s.batch for s in app.stages.values()] == [False, True, False]
        assert app.input == shoal.ArraySpec((None, None, 3), "uint8")
    assert mod.SIZE == 224


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet-v2"])
def test_any_size_gives_a_top5(narrow, name: str) -> None:
    app = narrow[name]
    for i, (h, w) in enumerate(SIZES):
        x = app.app["preprocess"](_photo(h, w, i))
        assert x.shape == (1, 3, 96, 96) and x.dtype == np.float32
        out = app.run(_photo(h, w, i))
        assert out["classes"].shape == (5,) and out["classes"].dtype == np.int64
        assert out["scores"].shape == (5,) and out["scores"].dtype == np.float32
        assert len(set(out["classes"].tolist())) == 5 and (out["classes"] < 50).all()
        assert (np.diff(out["scores"]) <= 0).all() and 0 < out["scores"].sum() <= 1 + 1e-6


def test_batched_backbone_gives_each_request_its_own_answer(narrow, same) -> None:
    app = narrow["resnet50"]
    photos = sample_inputs("resnet50", 4, seed=3)
    alone = [app.run(p) for p in photos]
    together = app.run_batch(photos)
    same(alone, together)
    backbone = app.app["backbone"]
    xs = np.concatenate([app.app["preprocess"](p) for p in photos])
    assert backbone(app.states["backbone"], xs).shape == (4, 50)


def test_too_small_or_malformed_photos_are_input_errors(narrow) -> None:
    app = narrow["mobilenet-v2"]
    for bad in [_photo(31, 64), np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32), "photo"]:
        with pytest.raises(StageFailed) as info:
            app.run(bad)
        assert info.value.stage == "preprocess" and isinstance(info.value.error, shoal.InputError)


@pytest.mark.parametrize("attr", ["resnet18", "resnet50", "mobilenet_v2"])
def test_full_size_apps_run(mod: ModuleType, attr: str) -> None:
    """The real-size models at 224x224."""
    out = getattr(mod, attr).run(_photo(300, 400))
    assert out["classes"].shape == (5,) and (out["classes"] < mod.NUM_CLASSES).all()
