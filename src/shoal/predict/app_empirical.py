"""The empirical application predictor, and the hooks the learned one will be trained through.

Both learn from *runs*: a plan served under a load, on the simulator or the runtime, and what came out
(:class:`ObservedRun`). The empirical predictor interpolates them as RaPP interpolates its GPU tables: for the same
plan (same groups and per-function settings, :func:`plan_key`) and the nearest burstiness measured, linear in the
arrival rate between the two measured rates that bracket it. It answers only for plans it has seen, which is what it
is for: checking the analytical predictor, and predicting the plans the controller switches between once they have
been run.

The learned predictor (to come, with runs of the simulator and the runtime) fits a regressor on
:func:`run_features` (the analytical prediction's own figures, so the trees learn its errors rather than queueing
theory from scratch) against the same :class:`ObservedRun` targets, and implements the same ``AppPredictor``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shoal.app import SLO, Plan
from shoal.predict.app_model import Load, PredictError, Prediction
from shoal.predict.profile import Profile

__all__ = ["ObservedRun", "EmpiricalAppPredictor", "plan_key", "run_features"]


def plan_key(plan: Plan) -> str:
    """Who a run belongs to: the plan's groups and every function's settings (a plan with other resources or batch
    settings is another plan)."""
    text = ";".join(f"{f.name}:{f.config!r}:{f.resources!r}" for f in plan.functions)
    return f"{plan.label}#{hashlib.sha1(text.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class ObservedRun:
    """One measured run: plan (its :func:`plan_key`), load, SLO, and the outcome (seconds, USD)."""

    plan: str
    rate_rps: float
    scv: float
    slo: str
    latency_s: dict[int, float]  # 50, 95, 99
    slo_hit_rate: float
    mean_instances: float
    cost_per_s: float
    bill_per_request: float

    def __post_init__(self) -> None:
        if not (self.rate_rps > 0 and self.scv >= 0 and 0 <= self.slo_hit_rate <= 1):
            raise PredictError(f"run of {self.plan!r}: need rate > 0, scv >= 0 and an SLO hit rate in [0, 1]")
        if set(self.latency_s) != {50, 95, 99}:
            raise PredictError(f"run of {self.plan!r}: latency_s needs percentiles 50, 95 and 99")


class EmpiricalAppPredictor:
    """Interpolates measured runs (see the module)."""

    kind = "empirical"

    def __init__(self, runs: Sequence[ObservedRun]) -> None:
        if not runs:
            raise PredictError("an empirical predictor needs at least one observed run")
        self.runs = list(runs)

    def predict(self, profile: Profile, plan: Plan, load: Load, slo: SLO | None = None) -> Prediction:
        slo = slo or plan.app.slo
        key = plan_key(plan)
        mine = [r for r in self.runs if r.plan == key]
        if not mine:
            known = sorted({r.plan for r in self.runs})
            raise PredictError(f"no observed run of plan {key!r}; runs are of {', '.join(known)}: run it first")
        mine = [r for r in mine if r.slo == str(slo)]
        if not mine:
            raise PredictError(f"the runs of plan {key!r} were scored against another SLO than {slo}")
        nearest = min(abs(math.log1p(r.scv) - math.log1p(load.scv)) for r in mine)
        group = sorted(
            (r for r in mine if abs(math.log1p(r.scv) - math.log1p(load.scv)) == nearest), key=lambda r: r.rate_rps
        )
        rates = np.array([r.rate_rps for r in group])
        notes = []
        if not rates[0] <= load.rate_rps <= rates[-1]:
            notes.append(f"rate {load.rate_rps:g}/s is outside the measured {rates[0]:g}..{rates[-1]:g}/s: clamped")
        if group[0].scv != load.scv:
            notes.append(f"burstiness scv {load.scv:g} not measured; took the runs at scv {group[0].scv:g}")

        def at(values: Sequence[float]) -> float:
            return float(np.interp(load.rate_rps, rates, np.asarray(values, dtype=np.float64)))

        cost_s = at([r.cost_per_s for r in group])
        return Prediction(
            predictor=self.kind,
            plan=plan.label,
            load=load,
            slo=slo,
            latency_s={q: at([r.latency_s[q] for r in group]) for q in (50, 95, 99)},
            slo_hit_rate=at([r.slo_hit_rate for r in group]),
            instances=math.ceil(at([r.mean_instances for r in group])),
            mean_instances=at([r.mean_instances for r in group]),
            cost_per_s=cost_s,
            cost_per_request=cost_s / load.rate_rps,
            bill_per_request=at([r.bill_per_request for r in group]),
            functions=(),
            notes=tuple(notes),
        )


def run_features(prediction: Prediction) -> dict[str, float]:
    """Features of a (plan, load) for the learned predictor: the load and the analytical prediction's figures."""
    fs = prediction.functions
    finite = [v for v in (prediction.latency_s[q] for q in (50, 95, 99)) if math.isfinite(v)]
    cap = max(finite) * 10 if finite else 60.0
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
