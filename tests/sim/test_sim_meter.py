"""The simulator's meter gives the runtime meter's figures for the same instance lifetimes and invocations."""

import pytest

from shoal.app import Resources
from shoal.predict.prices import DEFAULT_PRICES
from shoal.runtime.meter import Meter, RequestRecord
from shoal.sim.meter import SimMeter


def test_same_bill_and_cost_as_the_runtime_meter():
    res = Resources(vcpu=2.0, memory_mb=1536, gpu=0.25)
    sim, rt = SimMeter(DEFAULT_PRICES), Meter(DEFAULT_PRICES)
    sim.register("f", res, gpu=0.25)
    for iid, t0 in {"i1": 0.0, "i2": 10.0}.items():
        sim.instance_started("f", t0)
        rt.instance_started("f", iid, res, t0)
    sim.instance_stopped("f", 10.0, 40.0)
    rt.instance_stopped("i2", 40.0)
    for k, billed in enumerate([0.01, 0.02, 0.5]):
        sim.invoked("f", billed)
        rec = RequestRecord(
            f"r{k}", "a", "p", 0.0, billed, True, 200, 0.0, 0.0, {"s": billed}, 0.0, ["f"], {"f": billed}
        )
        rt.record(rec)
    summary = sim.summary({"f": 100.0})  # i1 still alive at t = 100
    assert summary["user_bill"]["usd"] == pytest.approx(rt.user_bill().usd, rel=1e-12)
    assert summary["resource_cost"]["usd"] == pytest.approx(rt.resource_cost(100.0).usd, rel=1e-12)
    assert sim.cost_until(100.0) == pytest.approx(rt.resource_cost(100.0).usd, rel=1e-12)
    assert summary["resource_cost"]["gpu_s"] == pytest.approx(rt.resource_cost(100.0).total.gpu_s)
