"""The meter's arithmetic on hand-computed examples: user bill, resource cost, latency summary, SLO hit rate."""

from __future__ import annotations

import json
import math

import pytest

from shoal.app.spec import Resources
from shoal.predict.prices import PriceTable
from shoal.runtime.meter import Meter, RequestRecord

# Round prices so that every figure below can be checked by hand.
PRICES = PriceTable(per_request=0.5, per_vcpu_s=2.0, per_gib_s=3.0, per_gpu_s=10.0, source="test")
PRE = Resources(vcpu=2.0, memory_mb=1024)  # 2 vCPU, 1 GiB, no GPU
MODEL = Resources(vcpu=1.0, memory_mb=2048, gpu=0.25)  # 1 vCPU, 2 GiB, a quarter GPU


def rec(
    app: str = "app",
    latency_s: float = 0.1,
    ok: bool = True,
    status: int = 200,
    billed: dict[str, float] | None = None,
    i: int = 0,
) -> RequestRecord:
    billed = {} if billed is None else billed
    return RequestRecord(
        request_id=f"r{i}",
        app=app,
        plan="fine",
        t_arrival=float(i),
        latency_s=latency_s,
        ok=ok,
        status=status,
        queue_wait_s=0.01,
        cold_start_s=0.02,
        exec_s={"pre": 0.03, "model": 0.04},
        hop_s=latency_s - 0.1,
        functions=list(billed),
        billed_s=billed,
    )


def metered() -> Meter:
    """Two instances of different resources; the model instance stays alive (idle keep-alive) after its work."""
    m = Meter(PRICES)
    m.instance_started("pre", "a", PRE, t=0.0)
    m.instance_started("model", "b", MODEL, t=1.0)
    m.record(rec(billed={"pre": 0.5, "model": 1.5}, i=1))
    m.record(rec(billed={"pre": 0.25, "model": 0.75}, ok=False, status=500, i=2))  # failures are billed too
    m.instance_stopped("a", t=10.0)
    return m


def test_user_bill_is_billed_duration_times_allocation_plus_request_fee() -> None:
    bill = metered().user_bill()
    pre, model = bill.per_function["pre"], bill.per_function["model"]
    # pre: 0.75 s x (2 vCPU, 1 GiB) -> 1.5 vCPU-s, 0.75 GiB-s; 2 invocations
    assert (pre.count, pre.seconds, pre.vcpu_s, pre.gib_s, pre.gpu_s) == (2, 0.75, 1.5, 0.75, 0.0)
    assert pre.usd == pytest.approx(2 * 0.5 + 1.5 * 2 + 0.75 * 3)  # 6.25
    # model: 2.25 s x (1 vCPU, 2 GiB, 0.25 GPU)
    assert (model.count, model.seconds, model.vcpu_s, model.gib_s, model.gpu_s) == (2, 2.25, 2.25, 4.5, 0.5625)
    assert model.usd == pytest.approx(2 * 0.5 + 2.25 * 2 + 4.5 * 3 + 0.5625 * 10)  # 24.625
    assert bill.total.count == 4
    assert bill.usd == pytest.approx(30.875)
    assert bill.to_dict()["per_function"]["model"]["usd"] == pytest.approx(24.625)


def test_resource_cost_counts_every_live_second_including_idle_keep_alive() -> None:
    m = metered()
    cost = m.resource_cost(t=21.0)
    pre, model = cost.per_function["pre"], cost.per_function["model"]
    assert (pre.count, pre.seconds, pre.vcpu_s, pre.gib_s, pre.gpu_s) == (1, 10.0, 20.0, 10.0, 0.0)
    assert pre.usd == pytest.approx(20 * 2 + 10 * 3)  # 70, no per-request fee in the resource cost
    # the model instance is alive from t=1 to t=21, though it billed only 2.25 s
    assert (model.count, model.seconds, model.vcpu_s, model.gib_s, model.gpu_s) == (1, 20.0, 20.0, 40.0, 5.0)
    assert model.usd == pytest.approx(20 * 2 + 40 * 3 + 5 * 10)  # 210
    assert cost.usd == pytest.approx(280.0)
    assert cost.usd > m.user_bill().usd
    # once stopped, an instance costs no more, however late the question is asked
    m.instance_stopped("b", t=31.0)
    m.instance_stopped("b", t=40.0)  # repeated stop is ignored
    assert m.resource_cost(t=100.0).per_function["model"].seconds == 30.0
    assert m.alive() == {}


def test_the_cost_rate_is_what_the_live_instances_of_some_functions_cost_per_second() -> None:
    m = metered()  # "pre" stopped at t=10, "model" alive
    assert m.cost_rate(["model"]) == pytest.approx(1 * 2 + 2 * 3 + 0.25 * 10)  # 10.5 USD/s
    m.instance_started("pre", "c", PRE, t=12.0)
    m.instance_started("pre", "d", PRE, t=12.0)
    assert m.cost_rate(["pre"]) == pytest.approx(2 * (2 * 2 + 1 * 3))
    assert m.cost_rate(["pre", "model", "other"]) == pytest.approx(14 + 10.5)
    assert m.cost_rate([]) == 0.0
    # the rate is the slope of the resource cost while no instance starts or stops
    assert m.resource_cost(t=20.0).usd - m.resource_cost(t=19.0).usd == pytest.approx(m.cost_rate(["pre", "model"]))


def test_instance_started_twice_is_refused_and_late_resources_price_earlier_requests() -> None:
    m = Meter(PRICES)
    m.record(rec(billed={"f": 2.0}))
    assert m.user_bill().per_function["f"].usd == pytest.approx(0.5)  # fee only until resources are known
    m.instance_started("f", "x", Resources(vcpu=1.0, memory_mb=512), t=0.0)
    assert m.user_bill().per_function["f"].usd == pytest.approx(0.5 + 2 * 2 + 1.0 * 3)
    with pytest.raises(ValueError, match="already started"):
        m.instance_started("f", "x", Resources(), t=1.0)
    assert m.resource_cost(t=-5.0).total.seconds == 0.0  # never negative


def test_latency_summary_percentiles_and_breakdown() -> None:
    m = Meter(PRICES)
    for i in range(1, 101):  # 1 ms .. 100 ms
        m.record(rec(latency_s=i / 1000, i=i))
    m.record(rec(latency_s=5.0, ok=False, status=504, i=101))
    m.record(rec(app="other", latency_s=1.0, i=102))
    s = m.latency_summary("app")
    assert (s["count"], s["ok"]) == (101, 100)
    # numpy's linear interpolation over 1..100 ms: p50 = 50.5, p90 = 90.1, p99 = 99.01 ms
    assert s["p50_s"] == pytest.approx(0.0505)
    assert s["p90_s"] == pytest.approx(0.0901)
    assert s["p99_s"] == pytest.approx(0.09901)
    assert s["mean_s"] == pytest.approx(0.0505)
    b = s["mean_breakdown_s"]
    assert (b["queue"], b["cold"], b["exec"]) == pytest.approx((0.01, 0.02, 0.07))
    assert b["hop"] == pytest.approx(0.0505 - 0.1)
    assert s["status"] == {"200": 100, "504": 1}
    assert m.latency_summary()["count"] == 102
    empty = Meter().latency_summary("nobody")
    assert empty["count"] == 0 and empty["p99_s"] is None


def test_slo_hit_rate_counts_failures_as_misses() -> None:
    m = Meter(PRICES)
    for i in range(7):
        m.record(rec(latency_s=0.1, i=i))
    m.record(rec(latency_s=0.3, i=7))  # too slow
    m.record(rec(latency_s=0.05, ok=False, status=429, i=8))  # fast, but failed
    m.record(rec(latency_s=0.05, ok=False, status=500, i=9))
    m.record(rec(app="other", latency_s=9.0, i=10))  # another app does not count
    assert m.slo_hit_rate("app", 0.2) == pytest.approx(0.7)
    assert m.slo_hit_rate("app", 0.1) == pytest.approx(0.7)  # the bound is inclusive
    assert m.slo_hit_rate("app", 1.0) == pytest.approx(0.8)
    assert math.isnan(m.slo_hit_rate("nobody", 1.0))


def test_window_is_bounded_but_totals_keep_counting() -> None:
    m = Meter(PRICES, keep=10)
    m.instance_started("f", "x", Resources(vcpu=1.0, memory_mb=1024), t=0.0)
    for i in range(25):
        m.record(rec(latency_s=float(i), billed={"f": 1.0}, i=i))
    assert len(m._records) == 10
    assert m.recorded == 25
    s = m.latency_summary()
    assert s["count"] == 10 and s["p50_s"] == pytest.approx(19.5)  # only requests 15..24 are kept
    assert m.user_bill().per_function["f"].count == 25
    with pytest.raises(ValueError, match="keep"):
        Meter(keep=0)


def test_snapshot_is_json_able() -> None:
    m = metered()
    snap = m.snapshot(t=21.0)
    text = json.dumps(snap)
    back = json.loads(text)
    assert back["resource_cost"]["total"]["usd"] == pytest.approx(280.0)
    assert back["user_bill"]["total"]["usd"] == pytest.approx(30.875)
    assert back["instances_alive"] == {"model": 1}
    assert back["apps"]["app"]["count"] == 2
    assert back["prices"]["source"] == "test"
