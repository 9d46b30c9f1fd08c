"""The learned application predictor: the analytical model, corrected by small gradient-boosted trees fitted on
runs of the real runtime (or the simulator).

Why a correction and not a model of its own: the runs a deployment can afford are few (the granularity experiment
calibrates 4 plans x 3 rates per application: 12 runs), far too few to learn queueing from scratch, while the
analytical model already knows how latency and instances move with load, batching and plan. What it gets wrong is
systematic and depends on where the plan sits (the runtime's KPA keeps more instances than the fixed point, CPU
contention on shared cores, the scale-up lag under bursts, the tail of a few dozen requests). So the trees learn, from
the analytical prediction's own figures (:func:`run_features`) and a few facts of the plan (:func:`plan_features`),

- ``log(measured p / analytical p)`` for each end-to-end percentile p50, p95, p99 (log: the squared loss is then on
  relative error, and a correction never makes a latency negative);
- ``log(measured cost/s / analytical cost/s)`` (resource cost; mean instances are scaled by the same ratio);
- ``measured SLO hit rate - analytical SLO hit rate`` (additive: the rate lives in [0, 1] and the planner compares
  it with a target such as 0.99; the corrected rate is clipped to [0, 1]).

A percentile the runs did not record (``ObservedRun.p50_s`` None) takes the p99's correction, so the corrected
distribution keeps its order; the corrected percentiles are made non-decreasing in any case. Per-function figures and
the user bill stay the analytical model's (the runs measure only end-to-end latency and resource cost).

Small ensembles (60 trees of at most 4 leaves, at least 3 runs a leaf, learning rate 0.1, L2 1.0): with a few dozen
runs a bigger model memorises each run's noise, and a leaf of one run learns that run's noise. The leaf size was
chosen by leave-one-run-out cross-validation on the granularity experiment's calibration runs only (docs/predictors.md).
Trees cannot extrapolate: outside the training runs' feature ranges
the correction is that of the nearest edge, and the analytical model carries the rest of the way (a burstier load
than any training run is corrected as the burstiest training run was). The trees are exported as arrays and
evaluated in NumPy (``shoal.predict.gpu_trees``); the file (``shoal.learned-app/1``) is JSON, never a pickle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shoal.app import SLO, Plan
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_model import Load, PredictError, Prediction, read_json_doc
from shoal.predict.gpu_trees import baseline_of, export_trees, fit_model, trees_from_json, trees_to_json
from shoal.predict.measured import Measurement
from shoal.predict.prices import PriceTable
from shoal.predict.profile import Profile

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_PARAMS",
    "SCHEMA",
    "LearnedPredictor",
    "ObservedRun",
    "features_of",
    "observed_run",
    "observed_runs",
    "plan_features",
    "run_features",
]

SCHEMA = "shoal.learned-app/1"
#: What the trees learn, each a residual of the analytical prediction (see the module docstring).
TARGETS = ("p50", "p95", "p99", "cost", "slo_hit")
PERCENTILES = {"p50": 50, "p95": 95, "p99": 99}
#: Log ratios are clipped to this: a run with no successful request (an infinite p99) must not make the loss infinite.
MAX_LOG_RATIO = 4.0
MIN_RUNS = 3
#: The features the trees see by default: scale-free figures of where the plan sits (the CPU the load keeps busy,
#: the busiest function's utilisation, the analytical p99 against the SLO and its hit rate, hops, function count,
#: mean batch, cold-start probability). Left out: figures in seconds or requests per second, which mostly say which
#: application a run was (with a few dozen runs the trees would learn each application's runs by heart, not the
#: model's errors); and the SCV, because calibration runs are all Poisson: their SCVs differ only by sampling noise
#: (0.8-1.2), on which the trees split, and a correction keyed on noise moved every prediction of a new run. Pass
#: ``features`` with ``"scv"`` when the training runs span burstiness.
DEFAULT_FEATURES = (
    "busy_cores",
    "max_utilisation",
    "log_p99_over_slo",
    "analytical_slo_hit_rate",
    "hops",
    "functions",
    "mean_batch",
    "cold_start_p",
)
DEFAULT_PARAMS: dict[str, Any] = {
    "max_iter": 60,
    "learning_rate": 0.1,
    "max_leaf_nodes": 4,
    "min_samples_leaf": 3,
    "l2_regularization": 1.0,
}


def run_features(prediction: Prediction) -> dict[str, float]:
    """Features of a (plan, load) for the learned predictor: the load and the analytical prediction's figures."""
    fs = prediction.functions
    cap = _latency_cap(prediction)
    return {
        "rate_rps": prediction.load.rate_rps,
        "scv": prediction.load.scv,
        "functions": float(len(fs)),
        "max_utilisation": max((f.utilisation for f in fs), default=0.0),
        "sum_service_s": sum(f.service_s for f in fs),
        "mean_batch": float(np.mean([f.batch for f in fs])) if fs else 1.0,
        "instances": float(prediction.instances),
        "cold_start_p": max((f.cold_start_p for f in fs), default=0.0),
        **{f"analytical_p{q}_s": min(prediction.latency_s[q], cap) for q in (50, 95, 99)},
        "analytical_slo_hit_rate": prediction.slo_hit_rate,
    }


def plan_features(plan: Plan, prediction: Prediction) -> dict[str, float]:
    """Facts of the plan the analytical model treats only through its profile: hops between functions (each a data
    transfer through the orchestrator), the longest chain of functions, stages per function, and the CPU the load
    keeps busy (the runtime's instances share the machine's cores, which the analytical model ignores)."""
    depth: dict[str, int] = {}
    for f in plan.functions:  # topological order
        depth[f.name] = 1 + max((depth[u] for u in f.upstream), default=0)
    busy_cores = sum(prediction.load.rate_rps * f.service_s / max(f.batch, 1.0) for f in prediction.functions)
    p99 = min(prediction.latency_s[99], _latency_cap(prediction))
    return {
        "hops": float(sum(len(f.upstream) for f in plan.functions)),
        "depth": float(max(depth.values(), default=0)),
        "max_stages_per_function": float(max((len(f.stages) for f in plan.functions), default=0)),
        "busy_cores": busy_cores,
        "mean_instances": prediction.mean_instances,
        "instances_per_function": prediction.instances / max(1, len(plan.functions)),
        "slo_s": prediction.slo.latency_s,
        "log_p99_over_slo": math.log(max(p99, 1e-6) / prediction.slo.latency_s),
    }


def _latency_cap(prediction: Prediction) -> float:
    """A finite stand-in for an infinite (requests lost) percentile: ten times the largest finite one, or 60 s."""
    finite = [v for v in (prediction.latency_s[q] for q in (50, 95, 99)) if math.isfinite(v)]
    return max(finite) * 10 if finite else 60.0


def features_of(plan: Plan, prediction: Prediction) -> dict[str, float]:
    """Every feature the trees may use (:func:`run_features` and :func:`plan_features`), by name."""
    return run_features(prediction) | plan_features(plan, prediction)


@dataclass(frozen=True, eq=False)
class ObservedRun:
    """One run (or one window of a run) of a plan under a load, as measured: what the learned predictor fits on.

    ``load`` is the load the run saw (its rate, the SCV of its inter-arrival gaps, its input mix); ``p99_s`` and
    ``p50_s`` / ``p95_s`` (optional) are end-to-end percentiles of its successful requests (inf when none
    succeeded), ``slo_hit`` the fraction of its requests within ``slo`` (failures miss), ``cost_per_s`` its resource
    cost per second. ``source`` names it in error messages."""

    profile: Profile
    plan: Plan
    load: Load
    slo: SLO
    p99_s: float
    slo_hit: float
    cost_per_s: float
    p50_s: float | None = None
    p95_s: float | None = None
    source: str = "a run"

    def __post_init__(self) -> None:
        for name in ("p50_s", "p95_s", "p99_s"):
            v = getattr(self, name)
            if v is None and name != "p99_s":
                continue
            if not isinstance(v, int | float) or math.isnan(v) or v <= 0:
                raise PredictError(
                    f"{self.source}: {name} must be a latency in seconds > 0 (inf: none succeeded), got {v!r}"
                )
        if not (isinstance(self.slo_hit, int | float) and 0.0 <= self.slo_hit <= 1.0):
            raise PredictError(f"{self.source}: slo_hit must be a fraction in [0, 1], got {self.slo_hit!r}")
        if not (isinstance(self.cost_per_s, int | float) and math.isfinite(self.cost_per_s) and self.cost_per_s >= 0):
            raise PredictError(
                f"{self.source}: cost_per_s must be a finite number of USD >= 0, got {self.cost_per_s!r}"
            )

    def measured(self, target: str) -> float | None:
        """The measured figure of ``target`` (one of ``TARGETS``)."""
        return {
            "p50": self.p50_s,
            "p95": self.p95_s,
            "p99": self.p99_s,
            "cost": self.cost_per_s,
            "slo_hit": self.slo_hit,
        }[target]


class RunRecord(Protocol):
    """What :func:`observed_run` reads of a run: ``shoal.runtime.replay.ReplayResult`` has it (``predict`` does not
    import the runtime)."""

    arrival_s: np.ndarray
    latency_s: np.ndarray
    status: np.ndarray

    def measurement(self, slo_s: float, start: float = 0.0, end: float | None = None) -> Measurement: ...


def observed_run(
    result: RunRecord,
    profile: Profile,
    plan: Plan,
    slo: SLO | None = None,
    *,
    start: float = 0.0,
    end: float | None = None,
    input_mix: Mapping[str, float] | None = None,
    source: str = "a run",
) -> ObservedRun:
    """A run of the runtime (``ReplayResult``), or its window ``[start, end)``, as an :class:`ObservedRun`: rate and
    SCV of the arrivals, SLO hit rate, cost per second and p99 as ``ReplayResult.measurement`` reads them (the
    empirical predictor's rows), p50 and p95 of the successful requests. ``input_mix``: the fractions of input sizes
    the run sent (None: the profile's middle size); ``slo`` defaults to the application's."""
    slo = slo or plan.app.slo
    stop = float(result.arrival_s.max(initial=0.0)) if end is None else end
    sel = (result.arrival_s >= start) & (result.arrival_s < stop)
    if not sel.any():
        raise PredictError(f"{source}: no request arrived in [{start:g}, {stop:g}) s: nothing was measured there")
    m = result.measurement(slo.latency_s, start, end)
    ok = result.latency_s[sel & (result.status == 200)]
    p50, p95 = (float(np.percentile(ok, q)) if ok.size else math.inf for q in (50, 95))
    return ObservedRun(
        profile=profile,
        plan=plan,
        load=Load(m.rate, m.scv, input_mix),
        slo=slo,
        p99_s=m.p99_ms / 1e3,
        slo_hit=m.slo_hit,
        cost_per_s=m.cost_per_s,
        p50_s=p50,
        p95_s=p95,
        source=source,
    )


def observed_runs(
    result: RunRecord,
    profile: Profile,
    plan: Plan,
    seconds: float,
    *,
    window_s: float | None = None,
    slo: SLO | None = None,
    input_mix: Mapping[str, float] | None = None,
    source: str = "a run",
) -> list[ObservedRun]:
    """A run of ``seconds`` of load whole (``window_s`` None) or cut into its full windows of ``window_s``: what a
    fit or a held-out score takes. Windows where nothing arrived are left out (there is nothing to measure); a
    window's source is the run's with ``@START s`` appended."""
    if window_s is None:
        return [observed_run(result, profile, plan, slo, end=seconds, input_mix=input_mix, source=source)]
    if not window_s > 0:
        raise PredictError(f"the window must be > 0 seconds, got {window_s!r}")
    out = []
    for k in range(int(seconds // window_s)):
        s, e = k * window_s, (k + 1) * window_s
        if ((result.arrival_s >= s) & (result.arrival_s < e)).any():
            out.append(
                observed_run(result, profile, plan, slo, start=s, end=e, input_mix=input_mix, source=f"{source}@{s:g}s")
            )
    return out


def _log_ratio(measured: float, predicted: float) -> float:
    return float(np.clip(math.log(max(measured, 1e-12) / max(predicted, 1e-12)), -MAX_LOG_RATIO, MAX_LOG_RATIO))


def _residual(target: str, run: ObservedRun, prediction: Prediction) -> float:
    measured = run.measured(target)
    assert measured is not None
    if target == "slo_hit":
        return measured - prediction.slo_hit_rate
    if target == "cost":
        return _log_ratio(measured, prediction.cost_per_s)
    cap = _latency_cap(prediction)
    return _log_ratio(min(measured, cap * math.exp(MAX_LOG_RATIO)), min(prediction.latency_s[PERCENTILES[target]], cap))


_WALK_FIELDS = ("feature", "threshold", "left", "right", "value", "missing_left")


class _Model:
    """One target's trees and baseline. ``value(row)`` walks them in plain Python: a planner predicts one (plan,
    load) at a time, and for one row that is about 40 times faster than ``gpu_trees.tree_sum``'s NumPy calls (the
    sum is taken in the same order, so the two agree exactly)."""

    def __init__(self, trees: list[dict[str, np.ndarray]], baseline: float) -> None:
        self.trees = trees
        self.baseline = baseline
        self._lists = [tuple(t[k].tolist() for k in _WALK_FIELDS) for t in trees]

    def value(self, row: Sequence[float]) -> float:
        out = self.baseline
        for feature, threshold, left, right, value, missing_left in self._lists:
            node = 0
            while feature[node] >= 0:
                v = row[feature[node]]
                go_left = missing_left[node] == 1 if math.isnan(v) else v <= threshold[node]
                node = left[node] if go_left else right[node]
            out += value[node]
        return out


class LearnedPredictor:
    """See the module docstring. ``predict`` is pure, as every ``AppPredictor``: the same inputs give the same
    prediction (the analytical part samples with a fixed seed, the trees are fixed)."""

    kind = "learned"

    def __init__(
        self,
        models: Mapping[str, _Model],
        feature_names: Sequence[str],
        analytical: AnalyticalPredictor | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if "p99" not in models or any(t not in TARGETS for t in models):
            raise PredictError(f"a learned predictor needs a p99 model and models only of {', '.join(TARGETS)}")
        self.models = dict(models)
        self.feature_names = list(feature_names)
        self.analytical = analytical or AnalyticalPredictor()
        self.meta = dict(meta or {})

    # -- fitting --------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        runs: Sequence[ObservedRun],
        analytical: AnalyticalPredictor | None = None,
        *,
        features: Sequence[str] = DEFAULT_FEATURES,
        seed: int = 0,
        **params: Any,
    ) -> LearnedPredictor:
        """Fit the corrections on ``runs`` (``params`` override ``DEFAULT_PARAMS``, scikit-learn's
        ``HistGradientBoostingRegressor`` settings). Each run is predicted analytically first; a run the analytical
        model cannot predict (its plan has a stage its profile lacks) is refused with its ``source``."""
        runs = list(runs)
        if len(runs) < MIN_RUNS:
            raise PredictError(
                f"fitting a learned predictor needs at least {MIN_RUNS} observed runs, got {len(runs)}: measure "
                "more plans or rates (shoal measure APP --runs-out DIR), or fit on the runs' windows too "
                "(shoal predict fit-app --window SECONDS; observed_runs(..., window_s=))"
            )
        bad = [r for r in runs if not isinstance(r, ObservedRun)]
        if bad:
            raise PredictError(
                f"fit takes ObservedRun rows (see observed_run), got a {type(bad[0]).__name__}: convert runs first"
            )
        analytical = analytical or AnalyticalPredictor()
        preds = []
        for r in runs:
            try:
                preds.append(analytical.predict(r.profile, r.plan, r.load, r.slo))
            except PredictError as e:
                raise PredictError(f"{r.source}: {e}") from None
        rows = [features_of(r.plan, p) for r, p in zip(runs, preds, strict=True)]
        names = list(features)
        unknown = [n for n in names if n not in rows[0]]
        if unknown or not names:
            raise PredictError(f"unknown features {unknown or names}: choose among {', '.join(rows[0])}")
        x = np.array([[row[n] for n in names] for row in rows], dtype=np.float64)
        settings = DEFAULT_PARAMS | params
        models: dict[str, _Model] = {}
        for target in TARGETS:
            if any(r.measured(target) is None for r in runs):
                continue  # a percentile some runs lack: it takes the p99's correction
            y = np.array([_residual(target, r, p) for r, p in zip(runs, preds, strict=True)])
            model = fit_model(x, y, seed=seed, **settings)
            models[target] = _Model(export_trees(model), baseline_of(model))
        meta = {
            "runs": len(runs),
            "apps": sorted({r.plan.app.name for r in runs}),
            "plans": sorted({f"{r.plan.app.name}:{r.plan.label}" for r in runs}),
            "rate_rps": [min(r.load.rate_rps for r in runs), max(r.load.rate_rps for r in runs)],
            "scv": [min(r.load.scv for r in runs), max(r.load.scv for r in runs)],
            "params": settings | {"seed": seed},
        }
        return cls(models, names, analytical, meta)

    # -- predicting -----------------------------------------------------------------------------------------------
    def predict(self, profile: Profile, plan: Plan, load: Load, slo: SLO | None = None) -> Prediction:
        """The analytical prediction of ``plan`` under ``load``, corrected (see :meth:`correct`)."""
        return self.correct(plan, self.analytical.predict(profile, plan, load, slo))

    def corrections(self, plan: Plan, prediction: Prediction) -> dict[str, float]:
        """The trees' output for an analytical ``prediction`` of ``plan``: per target, the log ratio (latencies,
        cost) or the difference (SLO hit rate) to apply."""
        row = features_of(plan, prediction)
        missing = [n for n in self.feature_names if n not in row]
        if missing:
            raise PredictError(f"this learned predictor was fitted on features {missing} this version lacks: refit it")
        x = [float(row[n]) for n in self.feature_names]
        out = {t: m.value(x) for t, m in self.models.items()}
        for t in PERCENTILES:
            out.setdefault(t, out["p99"])
        out.setdefault("cost", 0.0)
        out.setdefault("slo_hit", 0.0)
        return out

    def correct(self, plan: Plan, prediction: Prediction) -> Prediction:
        """An analytical ``prediction`` of ``plan`` corrected: lets callers that already have the analytical
        prediction (a benchmark scoring both) pay for it once."""
        c = self.corrections(plan, prediction)
        cap = _latency_cap(prediction)
        lat = [min(prediction.latency_s[q], cap) * math.exp(c[t]) for t, q in PERCENTILES.items()]
        lat = list(np.maximum.accumulate(lat))  # p50 <= p95 <= p99 whatever each tree says
        ratio = math.exp(c["cost"])
        cost = prediction.cost_per_s * ratio
        return replace(
            prediction,
            predictor=self.kind,
            latency_s=dict(zip(PERCENTILES.values(), (float(v) for v in lat), strict=True)),
            slo_hit_rate=float(min(1.0, max(0.0, prediction.slo_hit_rate + c["slo_hit"]))),
            mean_instances=prediction.mean_instances * ratio,
            cost_per_s=cost,
            cost_per_request=cost / prediction.load.rate_rps,
            notes=(
                *prediction.notes,
                "learned: end-to-end percentiles, SLO hit rate and cost corrected from runs; per-function figures and "
                "the bill are the analytical model's",
            ),
        )

    # -- files ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        a = self.analytical
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "analytical": {
                "samples": a.samples,
                "seed": a.seed,
                "cpu_quota": a.cpu_quota,
                "prices": {f.name: getattr(a.prices, f.name) for f in fields(a.prices)},
            },
            "features": self.feature_names,
            "models": {t: {"baseline": m.baseline, "trees": trees_to_json(m.trees)} for t, m in self.models.items()},
            "fitted": self.meta,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str = "learned predictor") -> LearnedPredictor:
        refit = "refit it (shoal predict fit-app, or LearnedPredictor.fit)"
        if not isinstance(doc, dict) or "schema" not in doc:
            raise PredictError(f"{where}: not a {SCHEMA} document (no 'schema' key): {refit}")
        if doc["schema"] != SCHEMA:
            raise PredictError(f"{where}: schema {doc['schema']!r}, this version reads {SCHEMA!r}: {refit}")
        try:
            a = doc["analytical"]
            analytical = AnalyticalPredictor(
                PriceTable(**a["prices"]), int(a["samples"]), int(a["seed"]), cpu_quota=bool(a["cpu_quota"])
            )
            models = {
                str(t): _Model(trees_from_json(m["trees"]), float(m["baseline"])) for t, m in doc["models"].items()
            }
            names = [str(n) for n in doc["features"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PredictError(f"{where}: malformed {SCHEMA} document ({type(e).__name__}: {e}): {refit}") from None
        if any(int(t["feature"].max(initial=-1)) >= len(names) for m in models.values() for t in m.trees):
            raise PredictError(f"{where}: a tree splits on a feature the file does not name: {refit}")
        return cls(models, names, analytical, doc.get("fitted", {}))

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> LearnedPredictor:
        p = Path(path)
        doc = read_json_doc(p, "learned predictor", lambda e: f"{str(p)!r} is not JSON ({e}): is it a {SCHEMA} file?")
        return cls.from_dict(doc, str(p))
