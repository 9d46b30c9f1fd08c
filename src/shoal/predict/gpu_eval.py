"""Accuracy of GPU latency predictors: MAPE on a table, and k-fold cross-validation over whole models.

A model's reference points are what the predictor is given about it, so they are not scored (they would be right by
construction for some predictors); every other row of the table is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shoal.predict.gpu_latency import GpuLatencyPredictor, RefPoint, references_in
from shoal.predict.latency_table import LatencyTable, LatencyTableError

__all__ = ["ModelError", "Evaluation", "evaluate", "cross_validate", "model_folds"]


@dataclass(frozen=True)
class ModelError:
    """Absolute percentage error over one model's scored rows: mean (MAPE), median and 90th percentile."""

    model: str
    rows: int
    mape: float
    median_ape: float
    p90_ape: float


@dataclass(frozen=True)
class Evaluation:
    kind: str
    rows: int
    mape: float  # over all scored rows, percent
    median_ape: float
    p90_ape: float
    per_model: tuple[ModelError, ...]

    @property
    def model_mapes(self) -> np.ndarray:
        return np.array([m.mape for m in self.per_model])

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "mape_percent": self.mape,
            "median_ape_percent": self.median_ape,
            "p90_ape_percent": self.p90_ape,
            "per_model": [m.__dict__ for m in self.per_model],
        }


def _scored(table: LatencyTable, model: str, refs: Sequence[RefPoint]) -> LatencyTable:
    t = table.of(model)
    keep = np.ones(len(t), dtype=bool)
    for b, s, q in refs:
        keep &= ~((t.batch == b) & (t.sm == s) & (t.quota == q))
    return LatencyTable(t.model[keep], t.batch[keep], t.sm[keep], t.quota[keep], t.latency_ms[keep], t.source)


def ape_by_model(predictor: GpuLatencyPredictor, table: LatencyTable) -> dict[str, np.ndarray]:
    """Absolute percentage errors of each model's scored rows."""
    out: dict[str, np.ndarray] = {}
    for m in table.models:
        refs = references_in(table, m, predictor.references)
        t = _scored(table, m, predictor.references)
        if len(t) == 0:
            continue
        pred = predictor.predict_ms(refs, t.batch, t.sm, t.quota)
        out[m] = 100.0 * np.abs(pred - t.latency_ms) / t.latency_ms
    return out


def _summarise(kind: str, apes: dict[str, np.ndarray]) -> Evaluation:
    if not apes:
        raise LatencyTableError("nothing to score: every row of the table is a reference point")
    per = tuple(
        ModelError(m, len(a), float(a.mean()), float(np.median(a)), float(np.percentile(a, 90)))
        for m, a in apes.items()
    )
    everything = np.concatenate(list(apes.values()))
    return Evaluation(
        kind,
        len(everything),
        float(everything.mean()),
        float(np.median(everything)),
        float(np.percentile(everything, 90)),
        per,
    )


def evaluate(predictor: GpuLatencyPredictor, table: LatencyTable) -> Evaluation:
    """MAPE of ``predictor`` on every model of ``table``, from each model's reference rows in that table."""
    return _summarise(predictor.kind, ape_by_model(predictor, table))


def model_folds(models: Sequence[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint folds of whole models (shuffled with ``seed``); every model is in exactly one."""
    if not 2 <= k <= len(models):
        raise ValueError(f"need 2 <= folds <= {len(models)} models, got {k}")
    order = np.random.default_rng(seed).permutation(len(models))
    return [[models[i] for i in order[f::k]] for f in range(k)]


def cross_validate(
    table: LatencyTable, fit: Callable[[LatencyTable], GpuLatencyPredictor], k: int = 10, seed: int = 0
) -> Evaluation:
    """Fit on all models but one fold, score the fold; every model is held out once. Errors are pooled."""
    apes: dict[str, np.ndarray] = {}
    kind = ""
    for fold in model_folds(table.models, k, seed):
        predictor = fit(table.subset(set(table.models) - set(fold)))
        kind = predictor.kind
        apes.update(ape_by_model(predictor, table.subset(fold)))
    order = {m: i for i, m in enumerate(table.models)}
    return _summarise(kind, dict(sorted(apes.items(), key=lambda kv: order[kv[0]])))
