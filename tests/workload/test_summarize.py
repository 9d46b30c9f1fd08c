"""Summaries of what a load driver saw: failures are SLO misses, percentiles are of successful requests."""

import math

from shoal.workload import Outcome, summarize


def test_failures_count_as_slo_misses_and_not_in_latency_percentiles():
    outcomes = [Outcome(0.0, 0.010, 200), Outcome(0.1, 0.030, 200), Outcome(0.2, 0.001, 503), Outcome(0.3, 0.5, 200)]
    s = summarize(outcomes, slo_s=0.1)
    assert s["requests"] == 4 and s["ok"] == 3
    assert s["slo_hit"] == 0.5  # the fast 503 is a miss, the 500 ms success is a miss
    assert s["p50_ms"] == 30.0


def test_no_outcomes_give_nan_rather_than_zero():
    s = summarize([], slo_s=0.1)
    assert s["requests"] == 0 and math.isnan(s["slo_hit"]) and math.isnan(s["p99_ms"])
