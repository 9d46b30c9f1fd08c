"""The empirical application predictor: interpolation of observed runs, and its refusals."""

from __future__ import annotations

import pytest
from predict_profiles_for_tests import chain, make_profile

from shoal.app import FunctionConfig, Plan
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_empirical import EmpiricalAppPredictor, ObservedRun, plan_key, run_features
from shoal.predict.app_model import AppPredictor, Load, PredictError


def run(plan: Plan, rate: float, p99: float, hit: float, scv: float = 1.0) -> ObservedRun:
    lat = {50: p99 / 3, 95: p99 / 1.5, 99: p99}
    return ObservedRun(plan_key(plan), rate, scv, str(plan.app.slo), lat, hit, rate / 10, rate * 1e-5, 2e-6)


def test_it_interpolates_in_rate_for_the_same_plan_and_nearest_burstiness() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 1.0, "s1": 1.0})
    plan = Plan.fine(app)
    runs = [run(plan, 10, 0.010, 1.0), run(plan, 30, 0.030, 0.9), run(plan, 20, 0.5, 0.1, scv=9.0)]
    p: AppPredictor = EmpiricalAppPredictor(runs)
    out = p.predict(prof, plan, Load(20))
    assert out.latency_s[99] == pytest.approx(0.020) and out.slo_hit_rate == pytest.approx(0.95)
    assert out.cost_per_request == pytest.approx(out.cost_per_s / 20) and not out.notes
    bursty = p.predict(prof, plan, Load(25, scv=8.0))
    assert bursty.latency_s[99] == pytest.approx(0.5) and "clamped" in bursty.notes[0]


def test_it_refuses_plans_it_has_not_seen() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 1.0, "s1": 1.0})
    p = EmpiricalAppPredictor([run(Plan.fine(app), 10, 0.01, 1.0)])
    with pytest.raises(PredictError, match="no observed run of plan 'coarse#"):
        p.predict(prof, Plan.coarse(app), Load(10))
    other = Plan.fine(app, default=FunctionConfig(max_batch_size=4))  # same groups, other settings: another plan
    assert plan_key(other) != plan_key(Plan.fine(app))
    with pytest.raises(PredictError, match="at least one"):
        EmpiricalAppPredictor([])


def test_run_features_come_from_an_analytical_prediction() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 1.0, "s1": 1.0})
    f = run_features(AnalyticalPredictor(samples=1000).predict(prof, Plan.fine(app), Load(100)))
    assert f["functions"] == 2 and 0 < f["max_utilisation"] < 1 and f["analytical_p99_s"] > 0
