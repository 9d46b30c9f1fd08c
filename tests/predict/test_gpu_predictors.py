"""GPU latency predictors: the table reader's errors, grid interpolation, held-out models, and saved files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gpu_tables_for_tests import models, write_table
from threadpoolctl import threadpool_limits

from shoal.predict.gpu_eval import cross_validate, evaluate, model_folds
from shoal.predict.gpu_grid import ModelGrid
from shoal.predict.gpu_latency import (
    DEFAULT_REFERENCES,
    BaselineGpuPredictor,
    EmpiricalGpuPredictor,
    load_predictor,
    save_predictor,
)
from shoal.predict.gpu_trees import LearnedGpuPredictor, features
from shoal.predict.latency_table import LatencyTableError, read_latency_table

REFS = ((1, 100, 100), (4, 100, 100), (4, 10, 100), (1, 100, 20))


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(tmp_path_factory.mktemp("gpu") / "table.csv", models(16))


def test_a_table_reads_into_arrays(table_path: Path) -> None:
    t = read_latency_table(table_path)
    assert len(t.models) == 16 and len(t) == 16 * 64
    assert t.points("net0")[(1, 100, 100)] == pytest.approx(1.5, abs=1e-4)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "the file is empty"),
        ("model,batch,sm_percent,latency_ms\n", r"lacks the column\(s\) quota_percent"),
        ("model,batch,sm_percent,quota_percent,latency_ms\n", "header but no rows"),
        ("model,batch,sm_percent,quota_percent,latency_ms\nm,one,100,100,2\n", "line 2, column batch: expected an"),
        ("model,batch,sm_percent,quota_percent,latency_ms\nm,1,150,100,2\n", r"line 2, column sm_percent: must be in"),
        ("model,batch,sm_percent,quota_percent,latency_ms\nm,1,100,100,-2\n", "line 2, column latency_ms: must be"),
        ("model,batch,sm_percent,quota_percent,latency_ms\nm,1,100,100,2\nm,1,100,100,3\n", "line 3 repeats .* line 2"),
        ("model,batch,sm_percent,quota_percent,latency_ms\n,1,100,100,2\n", "empty model name"),
        ("model,batch,sm_percent,quota_percent,latency_ms\nm,1,100\n", "line 2 has 3 fields"),
    ],
)
def test_bad_tables_name_the_line_and_column(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(LatencyTableError, match=match):
        read_latency_table(p)


def test_a_missing_table_says_so(tmp_path: Path) -> None:
    with pytest.raises(LatencyTableError, match="cannot read the GPU table"):
        read_latency_table(tmp_path / "nope.csv")


def test_the_grid_returns_measured_points_exactly_and_interpolates_between() -> None:
    pts = {(b, s, q): float(b * 10 + s / 10 + q / 100) for b in (1, 2, 4) for s in (10, 50, 100) for q in (50, 100)}
    del pts[(2, 50, 50)]  # a hole, filled from its nearest measured neighbour
    g = ModelGrid("m", pts)
    b, s, q = np.array([1, 4, 2]), np.array([50, 100, 10]), np.array([100, 50, 100])
    assert np.allclose(g.at(b, s, q), [pts[(1, 50, 100)], pts[(4, 100, 50)], pts[(2, 10, 100)]])
    mid = float(g.at(np.array([3]), np.array([100]), np.array([100]))[0])
    assert pts[(2, 100, 100)] < mid < pts[(4, 100, 100)]
    beyond = float(g.at(np.array([8]), np.array([100]), np.array([100]))[0])
    assert beyond > pts[(4, 100, 100)]  # linear past the largest batch
    assert np.isfinite(g.at(np.array([2]), np.array([50]), np.array([50]))).all()


def test_held_out_models_beat_the_baseline(table_path: Path) -> None:
    """Both predictors, fitted without a model, predict it better than ignoring sharing does."""
    t = read_latency_table(table_path)
    base = cross_validate(t, lambda _: BaselineGpuPredictor(REFS), k=4)
    emp = cross_validate(t, lambda x: EmpiricalGpuPredictor(x, REFS), k=4)
    learned = cross_validate(t, lambda x: LearnedGpuPredictor.fit(x, REFS, max_iter=60), k=4)
    assert len(emp.per_model) == 16 and emp.rows == 16 * (64 - len(REFS))
    assert emp.mape < base.mape / 2 and learned.mape < base.mape / 2


def test_folds_hold_out_every_model_once() -> None:
    names = [f"m{i}" for i in range(59)]
    folds = model_folds(names, 10)
    assert sorted(m for f in folds for m in f) == sorted(names)
    with pytest.raises(ValueError, match="folds"):
        model_folds(names, 1)


def test_the_exported_trees_predict_what_scikit_learn_predicts(table_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    t = read_latency_table(table_path)
    p = LearnedGpuPredictor.fit(t, REFS, max_iter=30, seed=3)
    x = np.concatenate(
        [
            features(np.array([t.points(m)[r] for r in REFS]), *(a.astype(float) for a in (s.batch, s.sm, s.quota)))
            for m in t.models
            for s in [t.of(m)]
        ]
    )
    y = np.concatenate([np.log(t.of(m).latency_ms / t.points(m)[REFS[0]]) for m in t.models])
    with threadpool_limits(limits=1, user_api="openmp"):  # as the predictor fits (see gpu_trees.fit)
        ref = HistGradientBoostingRegressor(
            max_iter=30, learning_rate=0.08, max_leaf_nodes=31, early_stopping=False, random_state=3
        ).fit(x, y)
    assert np.allclose(p.log_ratio(x), ref.predict(x), atol=1e-9)


@pytest.mark.parametrize("kind", ["empirical", "learned"])
def test_a_saved_predictor_is_json_and_predicts_the_same_after_loading(
    table_path: Path, tmp_path: Path, kind: str
) -> None:
    t = read_latency_table(table_path)
    p = EmpiricalGpuPredictor(t, REFS) if kind == "empirical" else LearnedGpuPredictor.fit(t, REFS, max_iter=20)
    path = save_predictor(p, tmp_path / "p.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "shoal.gpu-predictor/1" and doc["kind"] == kind
    q = load_predictor(path)
    refs = [3.0, 5.0, 30.0, 40.0]
    b, s, sm = np.array([1, 2, 8]), np.array([10, 55, 100]), np.array([30, 100, 70])
    assert np.allclose(p.predict_ms(refs, b, s, sm), q.predict_ms(refs, b, s, sm))
    assert evaluate(q, t).rows == evaluate(p, t).rows


def test_bad_saved_files_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text("not json")
    with pytest.raises(ValueError, match="not a saved predictor"):
        load_predictor(p)
    p.write_text(json.dumps({"schema": "shoal.gpu-predictor/9", "kind": "learned"}))
    with pytest.raises(ValueError, match="refit it"):
        load_predictor(p)
    p.write_text(json.dumps({"schema": "shoal.gpu-predictor/1", "kind": "learned", "references": [[1, 100, 100]]}))
    with pytest.raises(ValueError, match="malformed"):
        load_predictor(p)
    tree = {"feature": [0, -1], "threshold": [1.0, 0.0], "left": [0, 0], "right": [1, 0], "value": [0, 1]}
    tree["missing_left"] = [1, 0]
    doc = {"schema": "shoal.gpu-predictor/1", "kind": "learned", "references": [[1, 100, 100]], "baseline": 0.0}
    p.write_text(json.dumps({**doc, "trees": [tree]}))  # a node that is its own child would loop forever
    with pytest.raises(ValueError, match="child index"):
        load_predictor(p)


def test_predictions_need_the_reference_latencies(table_path: Path) -> None:
    p = EmpiricalGpuPredictor(read_latency_table(table_path), REFS)
    with pytest.raises(ValueError, match="expected 4 positive reference latencies"):
        p.predict_ms([1.0, 2.0], 1, 100, 100)
    with pytest.raises(ValueError, match="sm %, quota % in"):
        p.predict_ms([1.0, 2.0, 3.0, 4.0], 1, 0, 100)


def test_a_table_without_the_reference_points_is_refused_by_name(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("model,batch,sm_percent,quota_percent,latency_ms\nm,1,100,100,2\n", encoding="utf-8")
    with pytest.raises(LatencyTableError, match=r"model 'm' has no row at the reference point batch 4"):
        EmpiricalGpuPredictor(read_latency_table(p), DEFAULT_REFERENCES)


@pytest.mark.parametrize("kind", ["empirical", "learned"])
def test_an_anchored_prediction_passes_through_the_references(table_path: Path, kind: str) -> None:
    t = read_latency_table(table_path)
    train = t.subset(set(t.models) - {"net3"})
    p = (
        EmpiricalGpuPredictor(train, REFS)
        if kind == "empirical"
        else LearnedGpuPredictor.fit(train, REFS, max_iter=20, anchor=True)
    )
    refs = [t.points("net3")[r] for r in REFS]
    b, s, q = (np.array([r[k] for r in REFS]) for k in range(3))
    assert np.allclose(p.predict_ms(refs, b, s, q), refs)
    free = (
        EmpiricalGpuPredictor(train, REFS, anchor=False)
        if kind == "empirical"
        else LearnedGpuPredictor.fit(train, REFS, max_iter=20)
    )
    assert not np.allclose(free.predict_ms(refs, b, s, q), refs)
