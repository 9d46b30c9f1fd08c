"""The learned GPU latency predictor: gradient-boosted trees (scikit-learn's HistGradientBoostingRegressor).

Features of a point are what any model can offer, seen or not: log batch, SM and quota fractions and their
reciprocals (latency under a partition grows about as 1/share once the device is the bottleneck), the log of the
model's batch-1 reference latency, and the log ratios of its other references to it (the model's *signature*: how it
scales with batch, with SM partitions, with time quotas). The target is log(latency / batch-1 reference), so the
squared loss is on relative error and a model's scale cancels out. ``anchor=True`` corrects predictions to pass
through the reference latencies, as the empirical predictor does (off by default: on the RaPP table it lowered the
median error but not the mean, BENCHMARKS.md section 10).

Saving: the fitted trees are exported as plain arrays (feature, threshold, children, leaf values) in the JSON file
and evaluated here with NumPy, so loading needs no pickle and no particular scikit-learn version; ``tests/predict``
checks the exported trees against scikit-learn's own predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from shoal.predict.gpu_latency import (
    DEFAULT_REFERENCES,
    PREDICTOR_SCHEMA,
    RefPoint,
    _arrays,
    _ref_array,
    anchored,
    check_references,
    references_in,
    signature,
)
from shoal.predict.latency_table import LatencyTable

__all__ = [
    "LearnedGpuPredictor",
    "baseline_of",
    "export_trees",
    "features",
    "fit_model",
    "tree_sum",
    "trees_from_json",
    "trees_to_json",
]

_TREE_FIELDS = ("feature", "threshold", "left", "right", "value", "missing_left")


def features(ref_ms: np.ndarray, b: np.ndarray, s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Feature rows for points (b, s %, q %) of one model with reference latencies ``ref_ms``."""
    sf, qf = s / 100.0, q / 100.0
    cols = [np.log(b), sf, qf, 1.0 / sf, 1.0 / qf, np.log(b) - np.log(sf)]
    cols += [np.full(b.shape, np.log(ref_ms[0]))]
    cols += [np.full(b.shape, v) for v in signature(ref_ms)]
    return np.stack(cols, axis=-1)


class LearnedGpuPredictor:
    kind = "learned"

    def __init__(
        self,
        trees: list[dict[str, np.ndarray]],
        baseline: float,
        references: Sequence[RefPoint],
        meta: Mapping[str, Any],
        anchor: bool = False,
    ) -> None:
        self.anchor = anchor
        self.trees = trees
        self.baseline = baseline
        self.references = check_references(references)
        self.meta = dict(meta)

    @classmethod
    def fit(
        cls,
        table: LatencyTable,
        references: Sequence[RefPoint] = DEFAULT_REFERENCES,
        *,
        max_iter: int = 400,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 31,
        seed: int = 0,
        anchor: bool = False,
    ) -> LearnedGpuPredictor:
        refs = check_references(references)
        xs, ys = [], []
        for m in table.models:
            r = references_in(table, m, refs)
            t = table.of(m)
            b, s, q = (t.batch.astype(np.float64), t.sm.astype(np.float64), t.quota.astype(np.float64))
            xs.append(features(r, b, s, q))
            ys.append(np.log(t.latency_ms / r[0]))
        x, y = np.concatenate(xs), np.concatenate(ys)
        model = fit_model(
            x, y, max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes, seed=seed
        )
        trees = export_trees(model)
        meta = {"sklearn_params": model.get_params(), "models": table.models, "rows": len(y)}
        return cls(trees, baseline_of(model), refs, meta, anchor)

    def log_ratio(self, x: np.ndarray) -> np.ndarray:
        """The trees' sum on feature rows ``x``: predicted log(latency / batch-1 reference)."""
        return tree_sum(self.trees, self.baseline, x)

    def predict_ms(self, ref_ms: Sequence[float] | np.ndarray, batch: Any, sm: Any, quota: Any) -> np.ndarray:
        r = _ref_array(ref_ms, self.references)
        b, s, q = _arrays(batch, sm, quota)

        def raw(b: np.ndarray, s: np.ndarray, q: np.ndarray) -> np.ndarray:
            x = features(r, b.ravel(), s.ravel(), q.ravel())
            return (r[0] * np.exp(self.log_ratio(x))).reshape(b.shape)

        return anchored(raw, self.references, r, b, s, q) if self.anchor else raw(b, s, q)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PREDICTOR_SCHEMA,
            "kind": self.kind,
            "references": [list(r) for r in self.references],
            "baseline": self.baseline,
            "anchor": self.anchor,
            "trees": trees_to_json(self.trees),
            "fitted": _jsonable(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LearnedGpuPredictor:
        trees = trees_from_json(d["trees"])
        refs = [tuple(r) for r in d["references"]]
        return cls(trees, float(d["baseline"]), refs, d.get("fitted", {}), bool(d.get("anchor", False)))


def fit_model(x: np.ndarray, y: np.ndarray, *, seed: int = 0, **params: Any) -> Any:
    """A ``HistGradientBoostingRegressor`` (``params``: its settings; no early stopping) fitted on one OpenMP thread.

    One thread: OpenMP workers that spin at each tree's barriers made a fit of 1,000 rows take 105 s instead of 0.1 s
    on the loaded 2-core development machine; one core fits the RaPP table's 47,000 rows in seconds. scikit-learn is
    imported first, so that its OpenMP runtime is loaded when the limit is set."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    with threadpool_limits(limits=1, user_api="openmp"):
        return HistGradientBoostingRegressor(early_stopping=False, random_state=seed, **params).fit(x, y)


def export_trees(model: Any) -> list[dict[str, np.ndarray]]:
    """A fitted ``HistGradientBoostingRegressor``'s trees as arrays (its baseline: :func:`baseline_of`)."""
    return [_export(pred[0].nodes) for pred in model._predictors]


def baseline_of(model: Any) -> float:
    """The constant a fitted ``HistGradientBoostingRegressor`` starts its sum from."""
    return float(np.ravel(model._baseline_prediction)[0])


def tree_sum(trees: Sequence[Mapping[str, np.ndarray]], baseline: float, x: np.ndarray) -> np.ndarray:
    """``baseline`` plus every tree's leaf value on feature rows ``x``: what ``model.predict(x)`` gives."""
    out = np.full(len(x), baseline)
    rows = np.arange(len(x))
    for t in trees:
        node = np.zeros(len(x), dtype=np.int64)
        leaf = t["feature"][node] < 0
        while not leaf.all():
            f = np.where(leaf, 0, t["feature"][node])
            v = x[rows, f]
            go_left = np.where(np.isnan(v), t["missing_left"][node] == 1, v <= t["threshold"][node])
            nxt = np.where(go_left, t["left"][node], t["right"][node])
            node = np.where(leaf, node, nxt)
            leaf = t["feature"][node] < 0
        out += t["value"][node]
    return out


def trees_to_json(trees: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, list[Any]]]:
    return [{k: t[k].tolist() for k in _TREE_FIELDS} for t in trees]


def trees_from_json(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, np.ndarray]]:
    """The inverse of :func:`trees_to_json`, checked: a ``ValueError`` for unequal arrays or a child index that does
    not point forward (so that a hand-edited file cannot make the walk loop)."""
    trees = []
    for t in docs:
        tree = {
            "feature": np.asarray(t["feature"], dtype=np.int64),
            "threshold": np.asarray(t["threshold"], dtype=np.float64),
            "left": np.asarray(t["left"], dtype=np.int64),
            "right": np.asarray(t["right"], dtype=np.int64),
            "value": np.asarray(t["value"], dtype=np.float64),
            "missing_left": np.asarray(t["missing_left"], dtype=np.int64),
        }
        n = len(tree["feature"])
        if n == 0 or any(len(a) != n for a in tree.values()):
            raise ValueError("a tree's arrays are empty or of unequal length")
        inner = tree["feature"] >= 0
        idx = np.flatnonzero(inner)
        for kids in (tree["left"][inner], tree["right"][inner]):
            # Children after their parent: the walk always ends, even on a hand-edited file.
            if np.any(kids <= idx) or np.any(kids >= n):
                raise ValueError("a tree's child index is out of range")
        trees.append(tree)
    return trees


def _export(nodes: np.ndarray) -> dict[str, np.ndarray]:
    leaf = nodes["is_leaf"].astype(bool)
    if np.any(nodes["is_categorical"][~leaf]):
        raise ValueError("categorical splits are not exported")
    return {
        "feature": np.where(leaf, -1, nodes["feature_idx"]).astype(np.int64),
        "threshold": np.where(leaf, 0.0, nodes["num_threshold"]).astype(np.float64),
        "left": nodes["left"].astype(np.int64),
        "right": nodes["right"].astype(np.int64),
        "value": np.where(leaf, nodes["value"], 0.0).astype(np.float64),
        "missing_left": nodes["missing_go_to_left"].astype(np.int64),
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)
