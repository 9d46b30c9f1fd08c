"""The detection + classification DAG: a shared backbone, two heads, one merged response."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import shoal
from shoal.app import StageFailed
from shoal.zoo import sample_inputs


@pytest.fixture(scope="module")
def mod(example) -> ModuleType:
    return example("multi_model")


@pytest.fixture(scope="module")
def app(mod: ModuleType, loaded):
    return loaded(mod.app)


def test_the_dag_fans_out_and_in(mod: ModuleType) -> None:
    app = mod.app
    app.validate()
    assert app.name == "multi-model" and app.sink == "merge"
    assert app.downstream("backbone") == ["detect", "classify"]
    assert app["merge"].after == ("detect", "classify")
    assert [n for n, s in app.stages.items() if s.batch] == ["backbone", "detect", "classify"]


@pytest.mark.parametrize(
    ("h", "w", "shape"),
    [
        (32, 32, (64, 64)),
        (64, 64, (64, 64)),
        (120, 160, (128, 160)),
        (480, 640, (256, 320)),
        (640, 480, (320, 256)),
        (1000, 200, (320, 64)),
    ],
)
def test_preprocess_keeps_aspect_and_shrinks_large_photos(mod: ModuleType, h: int, w: int, shape) -> None:
    x = mod.preprocess(np.zeros((h, w, 3), np.uint8))
    assert x.shape == (1, 3, *shape) and x.dtype == np.float32


def test_response_structure_on_several_sizes(mod: ModuleType, app) -> None:
    for img in sample_inputs("multi-model", 5, seed=2):
        out = app.run(img)
        assert set(out) == {"detections", "classification"}
        det, cls = out["detections"], out["classification"]
        assert set(det) == {"boxes", "scores", "labels"} and set(cls) == {"classes", "scores"}
        n = len(det["scores"])
        assert 1 <= n <= mod.MAX_DETECTIONS
        assert det["boxes"].shape == (n, 4) and det["boxes"].dtype == np.float32
        assert det["labels"].shape == (n,) and det["labels"].dtype == np.int64
        assert ((det["labels"] >= 0) & (det["labels"] < mod.DET_CLASSES)).all()
        assert ((det["boxes"] >= 0) & (det["boxes"] <= 1)).all()
        assert (det["boxes"][:, 2:] >= det["boxes"][:, :2]).all()
        assert (np.diff(det["scores"]) <= 0).all() and (det["scores"] >= mod.SCORE_MIN).all()
        assert cls["classes"].shape == (5,) and cls["scores"].shape == (5,)
        assert (np.diff(cls["scores"]) <= 0).all() and (cls["classes"] < mod.NUM_CLASSES).all()


def test_no_two_kept_boxes_of_a_class_overlap_much(mod: ModuleType, app) -> None:
    det = app.run(sample_inputs("multi-model", 1, seed=5)[0])["detections"]
    b = det["boxes"]
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            if det["labels"][i] != det["labels"][j]:
                continue
            lo, hi = np.maximum(b[i, :2], b[j, :2]), np.minimum(b[i, 2:], b[j, 2:])
            inter = np.prod(np.clip(hi - lo, 0, None))
            union = np.prod(b[i, 2:] - b[i, :2]) + np.prod(b[j, 2:] - b[j, :2]) - inter
            assert inter / union <= mod.IOU_MAX + 1e-6


def test_nms_and_box_decoding(mod: ModuleType) -> None:
    boxes = np.array([[0, 0, 0.5, 0.5], [0.01, 0.01, 0.5, 0.5], [0.6, 0.6, 1, 1], [0, 0, 0.5, 0.5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    labels = np.array([1, 1, 1, 2])
    assert mod.nms(boxes, scores, labels).tolist() == [0, 2, 3]  # 1 overlaps 0 (same class); 3 is another class
    anchor = mod.anchors(2, 3)
    assert anchor.shape == (2 * 3 * len(mod.ANCHORS), 4)
    np.testing.assert_allclose(anchor[0, :2], [1 / 6, 1 / 4])  # first cell's centre, (cx, cy)
    # The square anchor is 128 px on a 96x64 input: (cx, cy) +- (2/3, 1), clipped to the image.
    np.testing.assert_allclose(mod.decode_boxes(np.zeros((1, len(anchor), 4)), anchor)[0, 0], [0, 0, 5 / 6, 1])


def test_batching_the_shared_stages_changes_no_answer(app, same) -> None:
    photos = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8) for i in range(3)]
    photos.append(np.random.default_rng(9).integers(0, 256, (100, 100, 3), dtype=np.uint8))  # another shape
    same([app.run(p) for p in photos], app.run_batch(photos))


def test_bad_photo_is_an_input_error(app) -> None:
    with pytest.raises(StageFailed) as info:
        app.run(np.zeros((16, 300, 3), np.uint8))
    assert info.value.stage == "preprocess" and isinstance(info.value.error, shoal.InputError)


def test_it_runs_under_a_split_plan(mod: ModuleType, app, same) -> None:
    """Real instances and shared memory: the heads in their own functions, fed by one backbone function."""
    img = sample_inputs("multi-model", 1, seed=7)[0]
    with shoal.local(mod.app, "preprocess+backbone,detect,classify,merge") as svc:
        out = svc.invoke(img, timeout=60)
    same(app.run(img), out)
