"""``shoal.local``: the embedded runtime in this process (real zygote, instances and shared memory, no HTTP)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from apps_for_tests import chain3, chain3_reference, concurrent, diamond, echo, sleepy

import shoal
from shoal import App, FunctionConfig, Plan, PlanError
from shoal.runtime.errors import QueueFull
from shoal.runtime.host import HostConfig
from shoal.testing import wait_until

#: The plan-matrix tests need no ONNX Runtime in the zygote: preloading less makes each service start faster.
LIGHT = HostConfig(preload=("numpy", "msgpack", "threadpoolctl"))


def set_partitions(items: list[str]) -> Iterator[list[list[str]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]
        yield [[first], *part]


def every_plan(app: App) -> list[str]:
    """Every valid plan of ``app``, written as plan text ('a+b,c')."""
    out = []
    for groups in set_partitions(list(app.stages)):
        try:
            Plan(app, groups)
        except PlanError:
            continue
        out.append(",".join("+".join(g) for g in groups))
    return out


def own_segments() -> list[str]:
    """Shared-memory files of this process's runtime and of its instances (their names carry this pid)."""
    pid = os.getpid()
    return sorted(glob.glob(f"/dev/shm/shoal-p{pid}-*") + glob.glob(f"/dev/shm/shoal-i{pid}-*"))


def functions(svc: Any, app: str) -> list[dict[str, Any]]:
    return next(a for a in svc.status()["apps"] if a["app"] == app)["functions"]


def assert_same(got: Any, want: Any) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want


def test_every_plan_enumerated() -> None:
    assert sorted(every_plan(chain3)) == sorted(["a+b+c", "a+b,c", "a,b+c", "a,b,c"])
    plans = every_plan(diamond)
    assert "src+left+right+merge" in plans and "src,left,right,merge" in plans
    assert "left+right,src,merge" not in plans  # not connected
    assert len(plans) > 4


@pytest.mark.parametrize("plan", every_plan(chain3))
def test_chain3_every_plan_matches_app_run(plan: str) -> None:
    xs = [
        np.arange(10, dtype=np.int64),
        np.random.default_rng(1).standard_normal((300, 300)),  # 720 KB: goes through shared memory
        [1, 2, 3],
    ]
    with shoal.local(chain3, plan, LIGHT) as svc:
        for x in xs:
            assert_same(svc.invoke(x), chain3.run(x))
            np.testing.assert_array_equal(svc.invoke(x), chain3_reference(x))


@pytest.mark.parametrize("plan", every_plan(diamond))
def test_diamond_every_plan_matches_app_run(plan: str) -> None:
    xs = [np.linspace(0, 1, 7), np.random.default_rng(2).standard_normal(40_000), 3.5]
    with shoal.local(diamond, plan, LIGHT) as svc:
        for x in xs:
            res = svc.call(x)
            assert_same(res.output, diamond.run(x))
            assert set(res.timing["exec_ms"]) == {"src", "left", "right", "merge"}


def test_concurrent_requests_on_concurrent_instances() -> None:
    plan = Plan.fine(concurrent, default=FunctionConfig(max_instances=2))
    with shoal.local(concurrent, plan, LIGHT) as svc:
        futures = [svc.submit(np.arange(i, i + 5)) for i in range(20)]
        for i, fut in enumerate(futures):
            out = fut.result(timeout=60).output
            np.testing.assert_array_equal(out, np.arange(i, i + 5) ** 2 + 1)
        for fn in functions(svc, "concurrent"):
            assert 1 <= fn["cold_starts"] <= 2, fn
            assert fn["in_flight"] == 0 and fn["queued"] == 0


def test_scale_to_zero_and_cold_start_again() -> None:
    config = HostConfig(stable_window_s=0.5, panic_window_s=0.1, tick_s=0.05, preload=LIGHT.preload)
    # target 1: with the default 0.7, one request in the 0.1-s panic window asks for a second instance
    plan = Plan.fine(chain3, default=FunctionConfig(keep_alive_s=0.3, target_concurrency=1.0))
    x = np.arange(5)
    with shoal.local(chain3, plan, config) as svc:
        first = svc.call(x)
        assert first.timing["cold_start_ms"] > 0
        assert_same(first.output, chain3.run(x))
        wait_until(
            lambda: all(not f["instances"] for f in functions(svc, "chain3")), timeout=20, message="scale to zero"
        )
        assert svc.status()["meter"]["instances_alive"].get("chain3/a", 0) == 0
        second = svc.call(x)
        assert second.timing["cold_start_ms"] > 0
        assert_same(second.output, chain3.run(x))
        assert all(f["cold_starts"] == 2 for f in functions(svc, "chain3"))


def test_min_instances_keeps_one_warm() -> None:
    config = HostConfig(stable_window_s=0.5, panic_window_s=0.1, tick_s=0.05, preload=LIGHT.preload)
    # target 1: at the default 0.7 one request in the 0.1-s panic window asks for a second instance
    kept = Plan.coarse(chain3, default=FunctionConfig(keep_alive_s=0.3, min_instances=1, target_concurrency=1.0))
    scaled = Plan.coarse(echo, default=FunctionConfig(keep_alive_s=0.3))
    # chain3 is ticked first: once echo has scaled to zero, chain3 has had every chance to as well.
    with shoal.local([(chain3, kept), (echo, scaled)], config=config) as svc:
        assert svc.invoke([1], app="chain3") is not None
        assert svc.invoke("hi", app="echo") == "hi"
        wait_until(lambda: not functions(svc, "echo")[0]["instances"], timeout=20, message="echo to scale to zero")
        (warm,) = functions(svc, "chain3")[0]["instances"]
        assert warm["state"] == "ready"
        res = svc.call(np.arange(3), app="chain3")
        assert res.timing["cold_start_ms"] == 0
        assert res.timing["functions"]["a+b+c"]["instance"] == warm["id"]


def test_shared_memory_is_not_leaked() -> None:
    before = own_segments()
    rng = np.random.default_rng(3)
    with shoal.local(chain3, "fine", LIGHT) as svc:
        for _ in range(40):
            x = rng.standard_normal(1 << 17)  # 1 MiB
            np.testing.assert_array_equal(svc.invoke(x), chain3_reference(x))
        # Recycled, not one per request: the parent's input segment and about two per instance.
        assert len(own_segments()) - len(before) <= 12, own_segments()
        xs = [rng.standard_normal(1 << 17) for _ in range(10)]
        futures = [svc.submit(x) for x in xs]
        for x, fut in zip(xs, futures, strict=True):
            np.testing.assert_array_equal(fut.result(timeout=60).output, chain3_reference(x))
    wait_until(lambda: own_segments() == before, timeout=10, message="segments to be unlinked after close")


def test_scale_out_stops_at_cpu_capacity_but_never_starves_a_function() -> None:
    """One core for instances: a burst on a 1-vCPU function asks for more instances, but only the first one fits;
    status says the function is at CPU capacity, and every request is still answered."""
    app = shoal.App("capped")

    @app.stage(vcpu=1)
    def nap(x):
        import time as _t

        _t.sleep(0.05)
        return x

    cfg = HostConfig(preload=LIGHT.preload, cpus=(0,), tick_s=0.02, stable_window_s=1.0, panic_window_s=0.2)
    with shoal.local(app, "coarse", cfg) as svc:
        futures = [svc.submit(i) for i in range(30)]
        wait_until(lambda: svc.status()["apps"][0]["functions"][0]["capacity_limited"], 20, message="capacity limit")
        assert [f.result(timeout=60).output for f in futures] == list(range(30))
        fn = svc.status()["apps"][0]["functions"][0]
    assert fn["cold_starts"] == 1


def test_a_queue_limit_of_zero_refuses_only_requests_that_would_wait() -> None:
    """queue_limit=0: a request that finds a free warm instance runs; one that would have to wait gets 429."""
    app = shoal.App("nowait")

    @app.stage()
    def nap(x):
        import time as _t

        _t.sleep(x)
        return x

    plan = Plan.coarse(app, default=FunctionConfig(queue_limit=0, min_instances=1, max_instances=1))
    with shoal.local(app, plan, LIGHT) as svc:
        fn = lambda: svc.status()["apps"][0]["functions"][0]  # noqa: E731
        wait_until(lambda: any(i["state"] == "ready" for i in fn()["instances"]), 20, message="a warm instance")
        assert svc.invoke(0.0) == 0.0
        slow = svc.submit(1.0)
        wait_until(lambda: fn()["in_flight"] == 1, 20, message="the slow request running")
        with pytest.raises(QueueFull):
            svc.invoke(0.0)
        assert slow.result(timeout=30).output == 1.0


def test_reserved_instances_start_even_beyond_cpu_capacity() -> None:
    """min_instances=3 on one core: the reservation is honoured (gang-scheduled work depends on it)."""
    app = shoal.App("reserved")

    @app.stage(vcpu=1)
    def same(x):
        return x

    cfg = HostConfig(preload=LIGHT.preload, cpus=(0,), tick_s=0.02)
    plan = Plan.coarse(app, default=FunctionConfig(min_instances=3, max_instances=3))
    with shoal.local(app, plan, cfg) as svc:
        wait_until(lambda: len(svc.status()["apps"][0]["functions"][0]["instances"]) == 3, 20, message="3 instances")
        assert svc.invoke(7) == 7


def test_surplus_instances_stop_after_the_pause_the_last_after_the_keep_alive() -> None:
    """A burst of eight 0.3-s naps scales `sleepy` out; once it is over and the autoscaler wants fewer, the extra
    instances stop after their 0.2-s surplus pause, while the last one stays warm for its 60-s keep-alive."""
    config = HostConfig(stable_window_s=0.5, panic_window_s=0.1, tick_s=0.05, preload=LIGHT.preload)
    plan = Plan.coarse(sleepy, default=FunctionConfig(keep_alive_s=60.0, surplus_idle_s=0.2, max_instances=4))
    with shoal.local(sleepy, plan, config) as svc:
        futures = [svc.submit(0.3) for _ in range(8)]
        assert [f.result(timeout=60).output for f in futures] == [0.3] * 8
        assert max(f["cold_starts"] for f in functions(svc, "sleepy")) >= 2, "the burst should have scaled out"
        wait_until(lambda: len(functions(svc, "sleepy")[0]["instances"]) == 1, timeout=20, message="one instance")
        (warm,) = functions(svc, "sleepy")[0]["instances"]
        assert warm["state"] == "ready"
        assert svc.call(0.0).timing["cold_start_ms"] == 0
