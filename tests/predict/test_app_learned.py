"""The learned application predictor's hook: features of a (plan, load) from an analytical prediction."""

from __future__ import annotations

from predict_profiles_for_tests import chain, make_profile

from shoal.app import Plan
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_learned import run_features
from shoal.predict.app_model import Load


def test_run_features_come_from_an_analytical_prediction() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 1.0, "s1": 1.0})
    f = run_features(AnalyticalPredictor(samples=1000).predict(prof, Plan.fine(app), Load(100)))
    assert f["functions"] == 2 and 0 < f["max_utilisation"] < 1 and f["analytical_p99_s"] > 0
