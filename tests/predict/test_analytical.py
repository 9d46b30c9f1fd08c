"""The analytical application predictor on hand-written profiles: arithmetic, monotonicity, joins, cost, batching,
GPU shares, input mixes and errors. (``test_predict_real_profile.py`` runs it on a measured profile.)"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from predict_profiles_for_tests import chain, diamond, make_profile

from shoal.app import FunctionConfig, Plan, Resources
from shoal.predict.analytical import AnalyticalPredictor, usd_per_instance_s
from shoal.predict.app_model import Load, PredictError
from shoal.predict.prices import DEFAULT_PRICES
from shoal.predict.profile import ProfileError
from shoal.predict.queueing import ggc_wait

PRED = AnalyticalPredictor(samples=20_000)


def pinned(c: int, **kw: object) -> FunctionConfig:
    return FunctionConfig(min_instances=c, max_instances=c, **kw)  # type: ignore[arg-type]


def test_a_lone_function_at_light_load_takes_its_overhead_and_service() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 10.0}, cv=0.05)
    p = PRED.predict(prof, Plan.fine(app, default=pinned(1)), Load(1.0))
    assert p.latency_s[50] == pytest.approx(0.0103, rel=0.02)  # 10 ms busy (medium) + 0.3 ms round trip
    assert p.slo_hit_rate == 1.0 and p.instances == 1


def test_the_wait_is_allen_cunneen_of_the_profiled_service() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 10.0}, cv=0.5)
    f = PRED.predict(prof, Plan.fine(app, default=pinned(2)), Load(150.0, scv=2.0)).functions[0]
    mean = 0.010 * math.sqrt(1 + 0.25)
    want = ggc_wait(150.0, mean, 2, ca2=2.0, cs2=0.25)
    assert f.wait_s == pytest.approx(want.mean_s) and f.utilisation == pytest.approx(want.utilisation)


def test_more_load_never_lowers_latency_at_fixed_instances() -> None:
    app = chain(3)
    prof = make_profile(app, {"s0": 2.0, "s1": 5.0, "s2": 1.0})
    plan = Plan.fine(app, default=pinned(2))
    preds = [PRED.predict(prof, plan, Load(r)) for r in (1, 50, 150, 250, 350, 390)]
    for q in (50, 95, 99):
        lat = [p.latency_s[q] for p in preds]
        assert lat == sorted(lat), (q, lat)
    hits = [p.slo_hit_rate for p in preds]
    assert hits == sorted(hits, reverse=True)
    burst = [PRED.predict(prof, plan, Load(300, scv=s)).latency_s[99] for s in (0.5, 1, 4, 16)]
    assert burst == sorted(burst)


def test_more_instances_never_raise_latency() -> None:
    app = chain(3)
    prof = make_profile(app, {"s0": 2.0, "s1": 5.0, "s2": 1.0})
    preds = [PRED.predict(prof, Plan.fine(app, default=pinned(c)), Load(300)) for c in (2, 3, 4, 8)]
    for q in (50, 95, 99):
        lat = [p.latency_s[q] for p in preds]
        assert lat == sorted(lat, reverse=True), (q, lat)


def test_the_autoscaler_adds_instances_with_load_up_to_its_cap() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 10.0})
    plan = Plan.fine(app, default=FunctionConfig(max_instances=6))
    preds = [PRED.predict(prof, plan, Load(r)) for r in (5, 50, 150, 400, 1000)]
    counts = [p.instances for p in preds]
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == 6
    mean_s = 0.010 * math.sqrt(1.01)
    assert all(p.instances >= math.ceil(p.load.rate_rps * mean_s) for p in preds[:-1])
    over = preds[-1]  # 1000 rps x 10 ms needs 10 instances; 6 lose requests
    assert not over.functions[0].stable and over.slo_hit_rate < 0.7 and over.latency_s[99] == math.inf
    assert "overloaded" in over.notes[0] and over.to_dict()["latency_ms"]["p99"] is None


def test_parallel_branches_join_at_the_slower() -> None:
    app = diamond()
    prof = make_profile(app, {"a": 1.0, "left": 2.0, "right": 8.0, "join": 1.0}, cv=0.01)
    fine = PRED.predict(prof, Plan.fine(app, default=pinned(1)), Load(1.0))
    assert fine.latency_s[50] == pytest.approx(0.001 + 0.008 + 0.001 + 3 * 0.0003, rel=0.02)
    coarse = PRED.predict(prof, Plan.coarse(app, default=pinned(1)), Load(1.0))
    assert coarse.latency_s[50] == pytest.approx(0.012 + 0.0003, rel=0.02)  # one instance runs all four in turn


def test_cost_is_instances_times_prices_as_the_meter_prices_them() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 2.0, "s1": 3.0})
    cfg = pinned(2, resources=Resources(vcpu=2, memory_mb=2048, gpu=0.25))
    plan = Plan.fine(app, default=cfg)
    p = PRED.predict(prof, plan, Load(20.0))
    per_instance = 2 * DEFAULT_PRICES.per_vcpu_s + 2 * DEFAULT_PRICES.per_gib_s + 0.25 * DEFAULT_PRICES.per_gpu_s
    assert usd_per_instance_s(plan.functions[0], DEFAULT_PRICES) == pytest.approx(per_instance)
    assert p.cost_per_s == pytest.approx(4 * per_instance) and p.mean_instances == pytest.approx(4)
    assert p.cost_per_request == pytest.approx(p.cost_per_s / 20.0)
    busy = (0.002 + 0.003) * math.sqrt(1.01)
    assert p.bill_per_request == pytest.approx(2 * DEFAULT_PRICES.per_request + busy * per_instance, rel=1e-6)


def test_an_idle_function_scales_to_zero_and_pays_cold_starts() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 2.0})
    p = PRED.predict(prof, Plan.fine(app, default=FunctionConfig(keep_alive_s=10)), Load(0.02))
    f = p.functions[0]
    assert f.cold_start_p == pytest.approx(math.exp(-0.2)) and f.mean_instances == pytest.approx(1 - math.exp(-0.2))
    assert p.latency_s[50] > 0.15  # most requests pay the 150 ms cold start (spawn 100 ms + load 50 ms)


def test_dynamic_batching_forms_batches_under_load_and_needs_fewer_instances() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 4.0}, batched=["s0"])
    one = PRED.predict(prof, Plan.fine(app, default=FunctionConfig(max_instances=64)), Load(600))
    cfg = FunctionConfig(max_instances=64, max_batch_size=8, max_batch_wait_s=0.002)
    batched = PRED.predict(prof, Plan.fine(app, default=cfg), Load(600))
    assert batched.functions[0].batch > 1.5 and batched.instances < one.instances
    light = PRED.predict(prof, Plan.fine(app, default=cfg), Load(1))
    assert light.functions[0].batch == pytest.approx(1.002, abs=1e-3)


def test_a_gpu_share_takes_its_time_from_the_gpu_rows() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 40.0}, gpu={"s0": 3.0})
    half = pinned(1, resources=Resources(gpu=0.5))
    p = PRED.predict(prof, Plan.fine(app, default=half), Load(1.0))
    assert p.functions[0].service_s == pytest.approx(0.006 * math.sqrt(1 + 0.05**2))  # 3 ms x 100 / 50, not 40 ms
    cpu = PRED.predict(prof, Plan.fine(app, default=pinned(1)), Load(1.0))
    assert cpu.functions[0].service_s == pytest.approx(0.040 * math.sqrt(1.01))


def test_input_mix_and_vcpu_share_change_the_service() -> None:
    app = chain(1)
    prof = make_profile(app, {"s0": 4.0})
    plan = Plan.fine(app, default=pinned(1))
    small = PRED.predict(prof, plan, Load(1, input_mix={"small": 1})).latency_s[50]
    large = PRED.predict(prof, plan, Load(1, input_mix={"large": 1})).latency_s[50]
    mixed = PRED.predict(prof, plan, Load(1, input_mix={"small": 1, "large": 1}))
    assert small < large and small <= mixed.latency_s[50] <= large
    quarter = Plan.fine(app, default=pinned(1, resources=Resources(vcpu=0.25)))
    as_measured = PRED.predict(prof, quarter, Load(1)).functions[0].service_s
    assert as_measured == pytest.approx(0.004 * math.sqrt(1.01))  # no CPU quota: a quarter core runs on a whole one
    quota = AnalyticalPredictor(samples=1000, cpu_quota=True).predict(prof, quarter, Load(1)).functions[0].service_s
    assert quota == pytest.approx(4 * as_measured)


def test_predictions_are_deterministic() -> None:
    app = chain(3)
    prof = make_profile(app, {"s0": 2.0, "s1": 5.0, "s2": 1.0})
    plan = Plan.parse(app, "s0+s1,s2")
    assert PRED.predict(prof, plan, Load(100)).to_dict() == PRED.predict(prof, plan, Load(100)).to_dict()


def test_bad_inputs_are_refused_with_what_to_do() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 2.0, "s1": 3.0})
    with pytest.raises(PredictError, match="rate must be"):
        Load(0.0)
    with pytest.raises(PredictError, match="scv"):
        Load(1.0, scv=-1)
    with pytest.raises(PredictError, match="fractions"):
        Load(1.0, input_mix={"small": -1.0})
    with pytest.raises(PredictError, match="'huge' was not profiled; the profile has small, medium, large"):
        PRED.predict(prof, Plan.fine(app), Load(1.0, input_mix={"huge": 1.0}))
    other = chain(3)
    with pytest.raises(PredictError, match=r"no stage 's2'.*shoal profile"):
        PRED.predict(prof, Plan.fine(other), Load(1.0))
    with pytest.raises(PredictError, match="samples"):
        AnalyticalPredictor(samples=10)
    assert issubclass(PredictError, ValueError) and issubclass(ProfileError, ValueError)


def test_a_profile_missing_a_row_says_which() -> None:
    app = chain(2)
    prof = make_profile(app, {"s0": 2.0, "s1": 3.0})
    holed = dataclasses.replace(prof, stages=tuple(r for r in prof.stages if (r.name, r.input_size) != ("s1", "large")))
    with pytest.raises(PredictError, match="no row of stage 's1' at input size 'large'"):
        PRED.predict(holed, Plan.fine(app), Load(1.0, input_mix={"large": 1.0}))
    assert PRED.predict(holed, Plan.fine(app), Load(1.0, input_mix={"small": 1.0})).slo_hit_rate == 1.0


def test_one_function_agrees_with_a_simulated_mg1_queue() -> None:
    """Lindley's recursion on lognormal service (CV 0.3) and Poisson arrivals at utilisation 0.6: the exact M/G/1
    sojourn percentiles, to which the predictor's (gamma-shaped wait, Allen-Cunneen mean) should come close."""
    app = chain(1)
    prof = make_profile(app, {"s0": 10.0}, cv=0.3)
    mean = 0.010 * math.sqrt(1.09)
    rate = 0.6 / mean
    p = PRED.predict(prof, Plan.fine(app, default=pinned(1)), Load(rate))
    rng = np.random.default_rng(5)
    n = 200_000
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    service = 0.010 * np.exp(math.sqrt(math.log(1.09)) * rng.standard_normal(n))
    done, free = np.empty(n), 0.0
    for i, (a, s) in enumerate(zip(arrivals.tolist(), service.tolist(), strict=True)):
        free = max(free, a) + s
        done[i] = free
    sojourn = done - arrivals + 0.0003  # plus the call's round trip, which the profile adds
    for q in (50, 95, 99):
        assert p.latency_s[q] == pytest.approx(float(np.percentile(sojourn, q)), rel=0.1), q
