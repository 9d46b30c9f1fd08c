"""The empirical application predictor: interpolation over measured (plan, load) -> outcome tables.

Where the analytical predictor reasons from a profile, this one only remembers: each row is a run of the real runtime
(a plan under an open-loop load of some rate and burstiness, ``runtime.replay``) with the SLO hit rate, resource cost
per second and p99 it gave. A plan's score at a new load is interpolated between the rows of that plan, linearly in
the arrival rate within each burstiness class (SCV of the inter-arrival gaps, in classes a factor of two wide), and
linearly in log SCV between the two classes that bracket the load's SCV (beyond the classes measured, the nearest
one's figures). A table measured under Poisson loads only answers every load from its Poisson rows; rows measured
under bursty loads (an MMPP) price what bursts cost a plan: scale-outs, cold starts, queueing at each onset.
Where the rows carry a burst index (``policy.arrivals``: how much the rate rises between neighbouring bins of the
table's ``burst_scale_s``, 0 for Poisson and for slow drift) and the load has one at that scale, the classes are by
burst index instead, linear in it between them: the SCV mistook a drifting trace for bursts (docs/granularity.md).
It is as RaPP is over its GPU tables: exact at measured points, and honest about where it has no data:

- below the lowest measured rate, the lowest row's figures (an idle plan costs at least what its warm instances do);
- above the highest, the last segment extrapolated (SLO hit rate clamped to [0, 1], cost to >= 0): a trend, flagged
  ``extrapolated`` in the score's details;
- a plan with no rows is refused with a message saying to measure it.

Stored as JSON (``shoal.measured/1``), never pickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoal.app import Plan
from shoal.policy.arrivals import credible_burst
from shoal.predict.planner import CannotPredict, Score

__all__ = ["MeasuredError", "MeasuredPredictor", "Measurement", "credible_scv"]

SCHEMA = "shoal.measured/1"


class MeasuredError(CannotPredict):
    """A table that cannot answer: no row for the plan, or malformed rows."""


@dataclass(frozen=True)
class Measurement:
    """One run: ``plan`` (its label) under ``rate`` req/s with inter-arrival SCV ``scv`` (1 for Poisson) and, where
    known, burst index ``burst`` (0 for Poisson; at the table's ``burst_scale_s``, ``policy.arrivals``)."""

    plan: str
    rate: float
    scv: float
    slo_hit: float
    cost_per_s: float
    p99_ms: float
    burst: float | None = None

    def __post_init__(self) -> None:
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise MeasuredError(f"{self.plan}: rate must be a finite number >= 0, got {self.rate!r}")
        if not (self.scv > 0 and math.isfinite(self.scv)):
            raise MeasuredError(f"{self.plan}: scv must be a finite number > 0, got {self.scv!r}")
        if not 0 <= self.slo_hit <= 1:
            raise MeasuredError(f"{self.plan}: slo_hit must be in [0, 1], got {self.slo_hit!r}")
        if not (self.cost_per_s >= 0 and math.isfinite(self.cost_per_s)):
            raise MeasuredError(f"{self.plan}: cost_per_s must be finite and >= 0, got {self.cost_per_s!r}")
        if self.burst is not None and not (self.burst >= 0 and math.isfinite(self.burst)):
            raise MeasuredError(f"{self.plan}: burst must be a finite number >= 0 or absent, got {self.burst!r}")


class MeasuredPredictor:
    """See the module docstring. ``predict(plan, load)`` takes any load with ``rate`` (and optionally ``scv``, and
    ``burst`` with ``burst_scale_s`` as ``policy.arrivals.ObservedLoad`` has them)."""

    def __init__(self, rows: Iterable[Measurement], slo: str | None = None, burst_scale_s: float | None = None) -> None:
        #: The SLO the rows' hit rates were scored against (e.g. "p99:200ms"); a table answers for that SLO only.
        self.slo = slo
        self.rows = list(rows)
        if not self.rows:
            raise MeasuredError("a measured table needs at least one row")
        if burst_scale_s is not None and not (burst_scale_s > 0 and math.isfinite(burst_scale_s)):
            raise MeasuredError(f"burst_scale_s must be a finite number > 0 or absent, got {burst_scale_s!r}")
        #: The time scale of the rows' burst indices; None if they have none.
        self.burst_scale_s = burst_scale_s if any(r.burst is not None for r in self.rows) else None
        if self.burst_scale_s is None and any(r.burst is not None for r in self.rows):
            raise MeasuredError("rows with a burst index need the table's burst_scale_s (the scale it was taken at)")
        self._by_plan: dict[str, dict[float, list[Measurement]]] = {}
        for r in self.rows:
            self._by_plan.setdefault(r.plan, {}).setdefault(_burstiness_class(r.scv), []).append(r)
        # per plan, its classes by position in log SCV: each class sits at the geometric mean of its rows' SCVs (a
        # Poisson class near 1, an MMPP's near its SCV); computed once, not on every prediction (the planner's inner
        # loop)
        self._log_scv_positions = {
            plan: sorted((float(np.mean([math.log(r.scv) for r in g])), c) for c, g in groups.items())
            for plan, groups in self._by_plan.items()
        }
        # the same by burst index, for the plans whose every row has one: classes a factor of two wide (0 alone),
        # each at its rows' mean index
        self._by_burst: dict[str, dict[float, list[Measurement]]] = {}
        for plan, groups in self._by_plan.items():
            rows_of_plan = [r for g in groups.values() for r in g]
            if all(r.burst is not None for r in rows_of_plan):
                by_class: dict[float, list[Measurement]] = {}
                for r in rows_of_plan:
                    by_class.setdefault(_burst_class(float(r.burst or 0.0)), []).append(r)
                self._by_burst[plan] = by_class
        self._burst_positions = {
            plan: sorted((float(np.mean([r.burst or 0.0 for r in g])), c) for c, g in groups.items())
            for plan, groups in self._by_burst.items()
        }

    @property
    def plans(self) -> list[str]:
        return sorted(self._by_plan)

    def predict(self, plan: Plan | str, load: Any) -> Score:
        label = plan if isinstance(plan, str) else plan.label
        if label not in self._by_plan:
            raise MeasuredError(
                f"no measurement of plan {label!r}; measured: {', '.join(self.plans)}. Measure it "
                "(benchmarks/granularity.py --calibrate) or use the analytical predictor"
            )
        rate = float(load.rate)
        burst = self._burst_of(load) if label in self._by_burst else None
        if burst is not None:  # burstiness as the autoscaler feels it: linear in the burst index between classes
            groups, at, x, coordinate = self._by_burst[label], self._burst_positions[label], burst, "burst"
        else:  # or as the gaps' SCV: linear in log SCV between classes
            scv = getattr(load, "scv", 1.0)
            scv = 1.0 if scv is None or not math.isfinite(scv) or scv <= 0 else float(scv)
            scv = credible_scv(scv, getattr(load, "count", None))
            groups, at, x, coordinate = self._by_plan[label], self._log_scv_positions[label], math.log(scv), "scv"
        below = [p for p in at if p[0] <= x]
        above = [p for p in at if p[0] > x]
        lo = below[-1] if below else at[0]
        hi = above[0] if above and below and x > lo[0] else lo
        hit, cost, p99, extrapolated = _at_rate(groups[lo[1]], rate)
        details: dict[str, Any] = {f"{coordinate}_used": lo[1]}
        if hi != lo:  # between two measured burstiness classes
            w = (x - lo[0]) / (hi[0] - lo[0])
            hit2, cost2, p99_2, extra2 = _at_rate(groups[hi[1]], rate)
            hit, cost, p99 = hit + w * (hit2 - hit), cost + w * (cost2 - cost), p99 + w * (p99_2 - p99)
            extrapolated = extrapolated or extra2
            details = {f"{coordinate}_used": [lo[1], hi[1]], f"{coordinate}_weight": w}
        return Score(
            min(1.0, max(0.0, hit)),
            max(0.0, cost),
            {"p99_ms": p99, **details, "extrapolated": extrapolated, "predictor": "measured"},
        )

    def _burst_of(self, load: Any) -> float | None:
        """The load's burst index to price it at, if it has one at this table's scale: observed (with a ``count``),
        less its sampling noise and blended with an expectation (``credible_burst``); stated, as given. None: price
        by SCV."""
        burst = getattr(load, "burst", None)
        if burst is None or getattr(load, "burst_scale_s", None) != self.burst_scale_s:
            return None
        if not math.isfinite(burst) and not math.isfinite(getattr(load, "expected_burst", math.nan)):
            return None
        if getattr(load, "count", None) is None or getattr(load, "window_s", None) is None:
            return max(0.0, float(burst))
        credible = credible_burst(load)
        return None if math.isnan(credible) else credible

    # -- files --------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schema": SCHEMA, "slo": self.slo}
        if self.burst_scale_s is not None:
            doc["burst_scale_s"] = self.burst_scale_s
        rows = [asdict(r) for r in self.rows]
        for row in rows:  # a table without burst indices is written as before them
            if row["burst"] is None:
                del row["burst"]
        return doc | {"rows": rows}

    @classmethod
    def from_dict(cls, doc: Any, where: str = "measured table") -> MeasuredPredictor:
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise MeasuredError(f"{where}: not a {SCHEMA} document")
        try:
            return cls(
                (Measurement(**row) for row in doc["rows"]), slo=doc.get("slo"), burst_scale_s=doc.get("burst_scale_s")
            )
        except (TypeError, KeyError) as e:
            raise MeasuredError(f"{where}: malformed row ({e})") from None

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> MeasuredPredictor:
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MeasuredError(f"cannot read measured table {str(p)!r}: {e}") from None
        return cls.from_dict(doc, str(p))


def credible_scv(scv: float, count: int | None) -> float:
    """An SCV observed over ``count`` arrivals, less what sampling explains: moved towards 1 (Poisson) by two
    standard errors of a Poisson sample's SCV, about ``2 sqrt(8 / count)`` (exponential gaps have kurtosis 9), and
    no further than 1. Without it a window of a steady load whose 1,200 gaps happen to give 1.1 was priced as partly
    bursty, and bursts are dear: plans predicted to miss their SLO on noise (the GPU experiment's fan-out switched
    urgently on steady load). ``count`` None (a load stated, not observed): as given."""
    if count is None or count < 3:
        return scv
    noise = 2.0 * math.sqrt(8.0 / count)
    return max(1.0, scv - noise) if scv > 1.0 else min(1.0, scv + noise)


def _burstiness_class(scv: float) -> float:
    """Rows are grouped by burstiness within a factor of two (SCV rounded to a power of 2 on a log scale): the SCV
    measured over a Poisson run scatters around 1 (0.8-1.2 over 10-20 s), and each such row must count as Poisson,
    or no two rows of a plan would share a group and nothing would be interpolated in rate."""
    return float(2.0 ** round(math.log2(scv)))


def _burst_class(burst: float) -> float:
    """Rows are grouped by burst index within a factor of two, as by SCV (``_burstiness_class``); 0 (Poisson) alone."""
    return 0.0 if burst <= 0 else float(2.0 ** round(math.log2(burst)))


def _at_rate(rows: Sequence[Measurement], rate: float) -> tuple[float, float, float, bool]:
    """One burstiness class's figures at ``rate``: (slo_hit, cost_per_s, p99_ms, extrapolated)."""
    per_rate = _mean_per_rate(rows)
    return _interpolate(np.array([r[0] for r in per_rate]), per_rate, rate)


def _mean_per_rate(rows: Sequence[Measurement]) -> list[tuple[float, float, float, float]]:
    """Repeats at one rate averaged: (rate, slo_hit, cost_per_s, p99_ms), by rate."""
    by_rate: dict[float, list[Measurement]] = {}
    for r in rows:
        by_rate.setdefault(r.rate, []).append(r)
    return [
        (
            rate,
            float(np.mean([r.slo_hit for r in rs])),
            float(np.mean([r.cost_per_s for r in rs])),
            float(np.mean([r.p99_ms for r in rs])),
        )
        for rate, rs in sorted(by_rate.items())
    ]


def _interpolate(
    rates: np.ndarray, rows: list[tuple[float, float, float, float]], rate: float
) -> tuple[float, float, float, bool]:
    cols = [np.array([r[i] for r in rows]) for i in (1, 2, 3)]
    if len(rows) == 1 or rate <= rates[0]:
        return float(cols[0][0]), float(cols[1][0]), float(cols[2][0]), False
    if rate <= rates[-1]:
        hit, cost, p99 = (float(np.interp(rate, rates, c)) for c in cols)
        return hit, cost, p99, False
    slope = (rate - rates[-2]) / (rates[-1] - rates[-2])
    out = [float(c[-2] + slope * (c[-1] - c[-2])) for c in cols]
    return out[0], out[1], out[2], True
