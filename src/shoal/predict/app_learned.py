"""Hooks for the learned application predictor (not built yet: it needs training runs).

It will fit a regressor on :func:`run_features` (the load and the analytical prediction's own figures, so that the
trees learn the analytical model's errors rather than queueing theory from scratch) against outcomes measured on the
runtime or the simulator: the rows of the empirical predictor's tables (``shoal.predict.measured.Measurement``, which
``shoal measure`` and ``ReplayResult.measurement`` produce), and implement the same ``AppPredictor`` interface.
"""

from __future__ import annotations

import math

import numpy as np

from shoal.predict.app_model import Prediction

__all__ = ["run_features"]


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
