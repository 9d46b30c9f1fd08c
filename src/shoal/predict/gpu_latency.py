"""GPU latency predictors: latency of a model at (batch, SM %, quota %) from a few reference measurements of it.

A model the predictor was not fitted on must be predictable, so every predictor takes the same small input about the
model: its latency at the *reference points* (by default batch 1 and batch 4 on the whole GPU, batch 4 on a 10 %
SM partition and batch 1 at a 20 % time quota; ``docs/predictors.md`` says why). A user with a GPU measures them in
seconds (two runs on the whole device, one under ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=10``, one under the
time-slicing scheduler); a model of the fitted table has them in the table.

- :class:`BaselineGpuPredictor` ignores sharing: the whole-GPU latency at that batch (what a predictor that knows
  nothing about MPS partitions and time quotas would say). The bar to beat.
- :class:`EmpiricalGpuPredictor` interpolates over measured tables, as RaPP does: the new model's latency shape
  over (batch, SM, quota) is the geometric mean of its nearest measured models' shapes (nearest by the ratios of the
  reference latencies), each interpolated on its own grid, scaled to the new model's batch-1 latency, then
  *anchored*: corrected along batch, SM and quota so that it passes through the model's own reference latencies
  (:func:`anchor_terms`).
- :class:`shoal.predict.gpu_trees.LearnedGpuPredictor`: gradient-boosted trees on the same inputs.

Saved predictors are JSON (never pickle: a predictor is a file users share), with a schema and version field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shoal.predict.gpu_grid import ModelGrid
from shoal.predict.latency_table import LatencyTable, LatencyTableError

__all__ = [
    "DEFAULT_REFERENCES",
    "PREDICTOR_SCHEMA",
    "RefPoint",
    "GpuLatencyPredictor",
    "BaselineGpuPredictor",
    "EmpiricalGpuPredictor",
    "references_in",
    "anchor_terms",
    "anchored",
    "check_references",
    "predictor_from_dict",
    "save_predictor",
    "load_predictor",
]

#: The schema of a saved predictor; the number changes when a field changes meaning.
PREDICTOR_SCHEMA = "shoal.gpu-predictor/1"

RefPoint = tuple[int, int, int]  # (batch, sm %, quota %)

#: What a new model contributes: its latency at these (batch, SM %, quota %) points.
DEFAULT_REFERENCES: tuple[RefPoint, ...] = ((1, 100, 100), (4, 100, 100), (4, 10, 100), (1, 100, 20))


class GpuLatencyPredictor(Protocol):
    """What the planner and the simulator call: latency (ms) of a model, given its reference latencies."""

    kind: str
    references: tuple[RefPoint, ...]

    def predict_ms(self, ref_ms: Sequence[float] | np.ndarray, batch: Any, sm: Any, quota: Any) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


def check_references(refs: Sequence[Sequence[int]]) -> tuple[RefPoint, ...]:
    """Validate reference points; the first must be at batch 1 (every prediction is scaled to it)."""
    out: list[RefPoint] = []
    for r in refs:
        if len(r) != 3 or not all(isinstance(v, int) for v in r):
            raise ValueError(f"a reference point is (batch, sm %, quota %) integers, got {r!r}")
        b, s, q = r
        if b < 1 or not (1 <= s <= 100 and 1 <= q <= 100):
            raise ValueError(f"reference point {r!r}: need batch >= 1 and sm %, quota % in 1..100")
        out.append((b, s, q))
    if not out:
        raise ValueError("at least one reference point is needed")
    if len(set(out)) != len(out):
        raise ValueError(f"reference points repeat: {out}")
    return tuple(out)


def references_in(table: LatencyTable, model: str, refs: Sequence[RefPoint]) -> np.ndarray:
    """The reference latencies of ``model`` as measured in ``table``; an error names a missing point."""
    pts = table.points(model)
    missing = [r for r in refs if r not in pts]
    if missing:
        b, s, q = missing[0]
        raise LatencyTableError(
            f"{table.source or 'table'}: model {model!r} has no row at the reference point batch {b}, sm_percent {s}, "
            f"quota_percent {q}; a predictor needs each model's latency at {_fmt(refs)} (measure them, or fit with "
            "--refs naming points the table has)"
        )
    return np.array([pts[r] for r in refs], dtype=np.float64)


def _fmt(refs: Sequence[RefPoint]) -> str:
    return ", ".join(f"{b}:{s}:{q}" for b, s, q in refs)


def _arrays(batch: Any, sm: Any, quota: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b, s, q = np.broadcast_arrays(
        np.asarray(batch, dtype=np.float64), np.asarray(sm, dtype=np.float64), np.asarray(quota, dtype=np.float64)
    )
    if np.any(b < 1) or np.any((s <= 0) | (s > 100)) or np.any((q <= 0) | (q > 100)):
        raise ValueError("need batch >= 1 and sm %, quota % in (0, 100]")
    return b, s, q


def _ref_array(ref_ms: Sequence[float] | np.ndarray, refs: Sequence[RefPoint]) -> np.ndarray:
    r = np.asarray(ref_ms, dtype=np.float64)
    if r.shape != (len(refs),) or not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"expected {len(refs)} positive reference latencies (ms) at {_fmt(refs)}, got {ref_ms!r}")
    return r


class BaselineGpuPredictor:
    """Sharing ignored: the latency on the whole GPU at that batch, linear in batch between the reference points
    taken on the whole GPU (100 % SM and quota)."""

    kind = "baseline"

    def __init__(self, references: Sequence[RefPoint] = DEFAULT_REFERENCES) -> None:
        self.references = check_references(references)
        whole = [(i, r[0]) for i, r in enumerate(self.references) if r[1] == 100 and r[2] == 100]
        if not whole:
            raise ValueError("the baseline needs a reference point on the whole GPU (sm 100 %, quota 100 %)")
        whole.sort(key=lambda x: x[1])
        self._idx = [i for i, _ in whole]
        self._batches = np.array([b for _, b in whole], dtype=np.float64)

    def predict_ms(self, ref_ms: Sequence[float] | np.ndarray, batch: Any, sm: Any, quota: Any) -> np.ndarray:
        r = _ref_array(ref_ms, self.references)
        b, _, _ = _arrays(batch, sm, quota)
        ys = r[self._idx]
        if len(ys) == 1:
            return np.full(b.shape, ys[0])
        slope = (ys[-1] - ys[-2]) / (self._batches[-1] - self._batches[-2])
        inside = np.interp(b, self._batches, ys)
        return np.where(b > self._batches[-1], ys[-1] + slope * (b - self._batches[-1]), inside)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": PREDICTOR_SCHEMA, "kind": self.kind, "references": [list(r) for r in self.references]}


def signature(ref_ms: np.ndarray) -> np.ndarray:
    """What the shape of a model's latency surface is matched on: log ratios of its references to the first."""
    return np.log(ref_ms[..., 1:] / ref_ms[..., :1])


def anchor_terms(
    references: Sequence[RefPoint], residual: np.ndarray, b: np.ndarray, s: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """Log corrections that make a prediction pass through the model's own reference latencies.

    ``residual[i]`` is log(measured / predicted) at reference ``i``. The first whole-GPU reference at a batch above 1
    corrects batch scaling (weight log b / log b_ref); the first reference on a smaller SM partition (full quota)
    corrects SM scaling beyond the batch correction at its batch (weight log(100 / sm) / log(100 / sm_ref)); the
    first at a smaller quota (all SMs) does the same for time quotas. Other references are not used to anchor.
    """
    corr = np.zeros(b.shape)
    batch_i = next((i for i, (rb, rs, rq) in enumerate(references) if rb > 1 and rs == 100 and rq == 100), None)
    b_ref = references[batch_i][0] if batch_i is not None else 1

    def batch_part(at: float | np.ndarray) -> np.ndarray | float:
        if batch_i is None:
            return 0.0 if isinstance(at, float) else np.zeros(np.shape(at))
        return np.maximum(np.log(at), 0.0) / np.log(b_ref) * residual[batch_i]

    corr += batch_part(b)
    for k, axis in ((1, s), (2, q)):
        i = next((j for j, r in enumerate(references) if r[k] < 100 and r[3 - k] == 100), None)
        if i is None:
            continue
        left = residual[i] - batch_part(float(references[i][0]))
        corr += np.maximum(np.log(100.0 / axis), 0.0) / np.log(100.0 / references[i][k]) * left
    return corr


def anchored(
    raw: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    references: Sequence[RefPoint],
    ref_ms: np.ndarray,
    b: np.ndarray,
    s: np.ndarray,
    q: np.ndarray,
) -> np.ndarray:
    """``raw(b, s, q)`` corrected by :func:`anchor_terms` to pass through ``ref_ms`` at the reference points."""
    rb, rs, rq = (np.array([r[k] for r in references], dtype=np.float64) for k in range(3))
    residual = np.log(ref_ms / raw(rb, rs, rq))
    return raw(b, s, q) * np.exp(residual[0] + anchor_terms(references, residual - residual[0], b, s, q))


class EmpiricalGpuPredictor:
    """Interpolation over measured tables (see the module): k nearest measured models by reference signature,
    weighted by inverse distance; each neighbour's log latency relative to its own batch-1 reference, interpolated on
    its grid; the weighted mean, scaled to the new model's first reference."""

    kind = "empirical"

    def __init__(
        self,
        table: LatencyTable,
        references: Sequence[RefPoint] = DEFAULT_REFERENCES,
        neighbours: int = 3,
        anchor: bool = True,
    ) -> None:
        self.references = check_references(references)
        self.anchor = anchor
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours!r}")
        self.neighbours = neighbours
        self.table = table
        self.grids = [ModelGrid(m, table.points(m)) for m in table.models]
        if not self.grids:
            raise LatencyTableError("an empirical predictor needs at least one model in its table")
        self._refs = np.stack([references_in(table, g.name, self.references) for g in self.grids])
        self._sigs = signature(self._refs)

    @property
    def models(self) -> list[str]:
        return [g.name for g in self.grids]

    def neighbours_of(self, ref_ms: Sequence[float] | np.ndarray) -> list[tuple[str, float]]:
        """The nearest measured models and their weights (summing to 1)."""
        r = _ref_array(ref_ms, self.references)
        d = np.sqrt(((self._sigs - signature(r)) ** 2).sum(axis=1))
        order = np.argsort(d, kind="stable")[: self.neighbours]
        w = 1.0 / (d[order] + 0.02)
        w /= w.sum()
        return [(self.grids[i].name, float(wi)) for i, wi in zip(order, w, strict=True)]

    def predict_ms(self, ref_ms: Sequence[float] | np.ndarray, batch: Any, sm: Any, quota: Any) -> np.ndarray:
        r = _ref_array(ref_ms, self.references)
        b, s, q = _arrays(batch, sm, quota)
        index = {g.name: i for i, g in enumerate(self.grids)}
        near = [(index[name], w) for name, w in self.neighbours_of(r)]

        def raw(b: np.ndarray, s: np.ndarray, q: np.ndarray) -> np.ndarray:
            log_shape = np.zeros(b.shape)
            for i, w in near:
                log_shape += w * (np.log(self.grids[i].at(b, s, q)) - np.log(self._refs[i, 0]))
            return r[0] * np.exp(log_shape)

        return anchored(raw, self.references, r, b, s, q) if self.anchor else raw(b, s, q)

    def to_dict(self) -> dict[str, Any]:
        t = self.table
        return {
            "schema": PREDICTOR_SCHEMA,
            "kind": self.kind,
            "references": [list(r) for r in self.references],
            "neighbours": self.neighbours,
            "anchor": self.anchor,
            "table": {
                "model": t.model.tolist(),
                "batch": t.batch.tolist(),
                "sm_percent": t.sm.tolist(),
                "quota_percent": t.quota.tolist(),
                "latency_ms": t.latency_ms.tolist(),
                "source": t.source,
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmpiricalGpuPredictor:
        t = d["table"]
        n = len(t["model"])
        cols = ("batch", "sm_percent", "quota_percent", "latency_ms")
        if any(len(t[c]) != n for c in cols):
            raise ValueError("table columns of unequal length")
        table = LatencyTable(
            np.asarray(t["model"], dtype=object),
            np.asarray(t["batch"], dtype=np.int64),
            np.asarray(t["sm_percent"], dtype=np.int64),
            np.asarray(t["quota_percent"], dtype=np.int64),
            np.asarray(t["latency_ms"], dtype=np.float64),
            str(t.get("source", "")),
        )
        return cls(table, [tuple(r) for r in d["references"]], int(d["neighbours"]), bool(d.get("anchor", True)))


def predictor_from_dict(d: Any) -> GpuLatencyPredictor:
    """Rebuild a saved predictor; a wrong schema or kind is refused with what was expected."""
    if not isinstance(d, Mapping):
        raise ValueError("a saved predictor is a JSON object")
    if d.get("schema") != PREDICTOR_SCHEMA:
        raise ValueError(
            f"schema {d.get('schema')!r} is not {PREDICTOR_SCHEMA!r}: refit it with this Shoal (shoal predict fit)"
        )
    kind = d.get("kind")
    try:
        if kind == "empirical":
            return EmpiricalGpuPredictor.from_dict(d)
        if kind == "learned":
            from shoal.predict.gpu_trees import LearnedGpuPredictor

            return LearnedGpuPredictor.from_dict(d)
        if kind == "baseline":
            return BaselineGpuPredictor([tuple(r) for r in d["references"]])
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"a saved {kind} predictor is malformed ({type(e).__name__}: {e}); refit it") from None
    raise ValueError(f"unknown predictor kind {kind!r}; expected empirical, learned or baseline")


def save_predictor(predictor: GpuLatencyPredictor, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(predictor.to_dict()) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def load_predictor(path: str | os.PathLike[str]) -> GpuLatencyPredictor:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read predictor {str(p)!r}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(p)!r} is not a saved predictor (not JSON: {e})") from None
    try:
        return predictor_from_dict(doc)
    except (ValueError, LatencyTableError) as e:
        raise ValueError(f"{p}: {e}") from None
