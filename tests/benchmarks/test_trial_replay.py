"""benchmarks/trial_replay.py: the adaptive loop's policy replayed over kept fixed runs."""

from __future__ import annotations

import numpy as np


def fixed_run(arrivals: np.ndarray, latency_s: float, usd_per_s: float):
    from shoal.runtime.replay import ReplayResult

    samples = [{"t": t, "cost_usd": t * usd_per_s} for t in np.arange(0.0, 181.0, 0.25)]
    n = arrivals.size
    return ReplayResult(arrivals, np.full(n, latency_s), np.full(n, 200), ["p"] * n, samples)


def test_an_exploring_replay_tries_the_plan_the_table_calls_short_and_keeps_it(trial_replay):
    """Two fixed runs at 8 req/s, evenly spaced (the load holds): both serve every request within the SLO, the middle
    plan at 60 % of coarse's cost; the table calls the middle plan 0.968. The table alone and the meter alone stay on
    coarse; exploring tries the middle plan once the budget is banked, holds it, finds it good, and keeps it."""
    from shoal.predict.measured import MeasuredPredictor, Measurement

    rows = [
        Measurement(p, r, 1.0, hit, usd, 100.0)
        for p, hit, usd in (("coarse", 0.997, 5e-4), ("middle", 0.968, 3e-4))
        for r in (4.0, 12.0)
    ]
    table = MeasuredPredictor(rows, slo="p99:200ms")
    arrivals = np.arange(0.0625, 180.0, 0.125)
    runs = {"coarse": fixed_run(arrivals, 0.05, 5e-4), "middle": fixed_run(arrivals, 0.05, 3e-4)}
    got = {}
    for arm, explore in (("adaptive", None), ("served", False), ("explore", True)):
        served = None if explore is None else trial_replay.ServedCosts(settle_s=20.0, slo_trials=explore)
        got[arm] = trial_replay.replay_loop(table, ["coarse", "middle"], runs, 0.2, (8.0, 0.0), served)
    assert set(got["adaptive"]["plans"]) == {"coarse"} and got["served"]["plans"] == got["adaptive"]["plans"]
    plans = got["explore"]["plans"]
    assert plans[0] == "coarse" and plans[-1] == "middle"
    assert [e["event"] for e in got["explore"]["events"]] == ["trial", "end"]
    trial, end = got["explore"]["events"]
    assert trial["to"] == "middle" and "trying it until it served 400 requests" in trial["reason"]
    assert end["verdict"] == "trial over: middle served its SLO target" and end["t"] > trial["t"] + 50
    assert plans.count("middle") == len(plans) - plans.index("middle")  # kept once tried
    assert got["explore"]["slo_hit"] == 1.0
    assert got["explore"]["cost_usd"] < 0.9 * got["adaptive"]["cost_usd"]
