"""Live plan switches: the new plan's functions are warmed, traffic moves over, the old ones drain; no request is lost
or failed because of a switch (issue 6, section 3)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import httpx
import numpy as np
import pytest
from apps_for_tests import paced, paced_reference, ref
from typer.testing import CliRunner

import shoal
from shoal.app import Plan
from shoal.cli import cli as shoal_cli
from shoal.runtime.errors import Unavailable
from shoal.runtime.host import HostConfig
from shoal.runtime.local import LocalService
from shoal.runtime.orchestrator import Result
from shoal.testing import ServerProcess, wait_until

PLANS = ["coarse", "p_src+p_left,p_right+p_merge", "p_src+p_left,p_right,p_merge", "fine"]


def _load(svc: LocalService, stop: threading.Event, sent: list[tuple[int, Future[Result]]]) -> None:
    i = 0
    while not stop.is_set():
        sent.append((i, svc.submit([i, i + 1])))
        i += 1
        time.sleep(0.008)


def test_switching_plans_under_load_loses_and_fails_no_request() -> None:
    with shoal.local(paced, "fine", HostConfig(tick_s=0.05, stable_window_s=5, panic_window_s=1)) as svc:
        stop, sent = threading.Event(), []
        driver = threading.Thread(target=_load, args=(svc, stop, sent))
        driver.start()
        summaries = []
        try:
            for plan in PLANS:
                time.sleep(0.6)
                summaries.append(svc.switch_plan(plan))
            time.sleep(0.6)
        finally:
            stop.set()
            driver.join()
        results = [(i, f.result(timeout=30)) for i, f in sent]
        for i, r in results:
            np.testing.assert_array_equal(r.output, paced_reference([i, i + 1]))
        served_by = {r.timing["plan"] for _, r in results}
        assert served_by == {"fine", *PLANS}, "every plan served part of the load"
        assert len(results) > 200

        assert summaries[0]["kept"] == [] and sorted(summaries[0]["draining"]) == [
            "p_left",
            "p_merge",
            "p_right",
            "p_src",
        ]
        # "a+b,c+d" -> "a+b,c,d": the first function is the same, so its pool (and warm instances) is kept
        assert summaries[2]["kept"] == ["p_src+p_left"]
        assert summaries[2]["draining"] == ["p_right+p_merge"]
        assert all(n >= 1 for s in summaries for n in s["warmed"].values())

        # the old pools close once their last request is done: only the fine plan's instances are left
        wait_until(lambda: not svc.host._retired, timeout=10)
        live = {i.pool.name for i in svc.host.instances.values()}
        assert live <= {"p_src", "p_left", "p_right", "p_merge"}
        status = svc.status()["apps"][0]
        assert status["plan"] == "fine"


def test_a_switch_whose_functions_do_not_get_ready_is_abandoned_and_the_old_plan_keeps_serving() -> None:
    with shoal.local(paced, "fine") as svc:
        assert svc.invoke([1.0]).tolist() == [9.0]
        with pytest.raises(Unavailable, match="abandoned"):
            svc._run(svc.host.switch_plan("paced", shoal.Plan.coarse(paced), ready_timeout_s=0.0))
        assert svc.status()["apps"][0]["plan"] == "fine"
        assert svc.invoke([2.0]).tolist() == [18.0]
        assert {i.pool.name for i in svc.host.instances.values()} <= {"p_src", "p_left", "p_right", "p_merge"}


def test_a_plan_that_names_another_apps_stages_is_refused() -> None:
    other = shoal.App("other")
    other.stage(lambda x: x, name="only")
    with shoal.local(paced, "fine") as svc:
        with pytest.raises(ValueError, match="made for app"):
            svc._run(svc.host.switch_plan("paced", shoal.Plan.coarse(other)))
        with pytest.raises(shoal.PlanError, match="nope"):
            svc.switch_plan("p_src+nope,p_left,p_right,p_merge")


def test_switch_over_http_needs_a_valid_plan_and_serves_it() -> None:
    with ServerProcess(ref("paced"), "fine") as srv:
        url = f"{srv.url}/apps/paced/plan"
        bad = httpx.post(url, json={"plan": "p_src+p_nowhere"}, timeout=10)
        assert bad.status_code == 400 and "p_nowhere" in bad.json()["error"]
        assert httpx.post(url, content=b"{not json", timeout=10).status_code == 400
        assert httpx.post(url, json={"plan": "coarse", "warm": {"x": -1}}, timeout=10).status_code == 400
        assert httpx.post(f"{srv.url}/apps/nope/plan", json={"plan": "fine"}, timeout=10).status_code == 404
        ok = httpx.post(url, json={"plan": "coarse", "warm": {"p_src+p_left+p_right+p_merge": 2}}, timeout=30)
        assert ok.status_code == 200, ok.text
        assert ok.json()["warmed"] == {"p_src+p_left+p_right+p_merge": 2}
        assert httpx.get(f"{srv.url}/apps", timeout=10).json()["paced"]["plan"] == "coarse"
        r = httpx.post(f"{srv.url}/apps/paced/invoke", json=[1, 2], timeout=10)
        assert r.json()["output"] == [9.0, 18.0]

        cli = CliRunner()
        done = cli.invoke(shoal_cli, ["switch", "paced", "p_src,p_left+p_right+p_merge", "--url", srv.url])
        assert done.exit_code == 0, done.output
        assert "now serves plan p_src,p_left+p_right+p_merge" in done.output
        refused = cli.invoke(shoal_cli, ["switch", "paced", "fine", "--warm", "p_src", "--url", srv.url])
        assert refused.exit_code != 0 and "FUNCTION=N" in refused.output
        wrong = cli.invoke(shoal_cli, ["switch", "paced", "p_src+p_oops", "--url", srv.url])
        assert wrong.exit_code != 0 and "p_oops" in wrong.output


def test_switch_over_http_is_an_admin_action_when_a_token_is_set() -> None:
    with ServerProcess(ref("paced"), "fine", token="s3cret") as srv:
        url = f"{srv.url}/apps/paced/plan"
        assert httpx.post(url, json={"plan": "coarse"}, timeout=10).status_code == 401
        auth = {"authorization": "Bearer s3cret"}
        assert httpx.post(url, json={"plan": "coarse"}, headers=auth, timeout=30).status_code == 200


def test_a_switch_warms_instances_for_the_recent_work_not_the_old_plans_count() -> None:
    """The coarse pool runs 3 instances, but one request at a time keeps well under one instance busy: each new
    function starts one. Without recent requests to time, the old plan's count is the guide."""
    with shoal.local(paced, "coarse", HostConfig(tick_s=600)) as svc:  # no autoscaler tick while the test runs
        pool = svc.host.deployment("paced").pools["p_src+p_left+p_right+p_merge"]

        async def three() -> None:
            for _ in range(3):
                pool.start_instance()

        svc._run(three(), timeout=10)
        wait_until(lambda: pool.count("ready") == 3, timeout=30)
        fresh = svc.switch_plan("p_src+p_left,p_right+p_merge")
        assert fresh["warmed"] == {"p_src+p_left": 3, "p_right+p_merge": 3}
        for i in range(5):
            assert svc.invoke([float(i)]).tolist() == paced_reference([i]).tolist()
        summary = svc.switch_plan("fine")
        assert summary["warmed"] == {"p_src": 1, "p_left": 1, "p_right": 1, "p_merge": 1}


def test_the_cost_rate_counts_the_current_plans_live_instances_only() -> None:
    with shoal.local(paced, "fine", HostConfig(tick_s=0.05)) as svc:
        host = svc.host
        svc.invoke([1.0, 2.0])
        fine = [f"paced/{f.name}" for f in host.deployment("paced").plan.functions]
        assert len(fine) == 4 and host.meter.cost_rate(fine) > 0
        assert host.cost_rate("paced") == pytest.approx(host.meter.cost_rate(fine))
        svc.switch_plan("coarse")
        coarse = [f"paced/{f.name}" for f in host.deployment("paced").plan.functions]
        assert len(coarse) == 1 and host.meter.cost_rate(coarse) > 0
        assert host.cost_rate("paced") == pytest.approx(host.meter.cost_rate(coarse))  # draining fine not counted
        wait_until(lambda: host.meter.cost_rate(fine) == 0, timeout=10, message="fine drained")


def test_a_function_that_merges_stages_is_warmed_for_their_work_together() -> None:
    """Fine runs 2 + 1 + 1 + 1 instances and its recent requests kept ~8 busy across the four stages: coarse takes on
    all of that work, so it is warmed to the four pools' count together (5), not the busiest one's (2)."""
    from shoal.runtime.meter import RequestRecord

    with shoal.local(paced, "fine", HostConfig(tick_s=600)) as svc:  # no autoscaler tick while the test runs
        host = svc.host
        dep = host.deployment("paced")

        async def start() -> None:
            for name, n in (("p_src", 1), ("p_left", 2), ("p_right", 1), ("p_merge", 1)):
                for _ in range(n):
                    dep.pools[name].start_instance()

        svc._run(start(), timeout=10)
        now = host.now()
        stages = ("p_src", "p_left", "p_right", "p_merge")
        for i in range(40):  # 40 requests over the last second, 0.2 s of execution each: 8 busy
            at = now - 1.0 + i / 40
            host.meter.record(
                RequestRecord(
                    f"r{i}", "paced", "fine", at, 0.3, True, 200, 0.0, 0.0, dict.fromkeys(stages, 0.05), 0.0, [], {}
                )
            )
        coarse = Plan.parse(dep.app, "coarse").functions[0]
        assert host._warm_count(dep, coarse) == 5
        left = next(f for f in Plan.parse(dep.app, "fine").functions if f.name == "p_left")
        assert host._warm_count(dep, left) == 2  # one pool's stage: its count, as before
