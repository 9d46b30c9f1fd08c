"""Adaptive granularity on the real runtime: load windows, the controller's decisions, and live switches."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from apps_for_tests import paced, paced_reference

import shoal
from shoal.policy.forecast import Lookahead
from shoal.policy.granularity import Candidate, ControllerConfig, GranularityController
from shoal.runtime.adaptive import ObservedLoad, observe_load
from shoal.runtime.errors import NotFound
from shoal.runtime.host import HostConfig
from shoal.testing import wait_until
from shoal.workload.generators import mmpp, poisson


def test_a_window_of_poisson_arrivals_has_its_rate_and_an_scv_near_one():
    t = poisson(200.0, 20.0, seed=3)
    load = observe_load(t, now=20.0, window_s=10.0)
    assert load.count == int(((t > 10) & (t <= 20)).sum())
    assert load.rate == pytest.approx(200.0, rel=0.05)
    assert load.scv == pytest.approx(1.0, abs=0.1)


def test_bursty_arrivals_have_an_scv_above_one():
    t = mmpp([5.0, 200.0], [5.0, 2.0], 600.0, seed=1)
    assert observe_load(t, now=600.0, window_s=600.0).scv > 2.0


def test_an_empty_or_thin_window_says_so():
    empty = observe_load([], now=5.0, window_s=1.0)
    assert empty.count == 0 and empty.rate == 0.0 and math.isnan(empty.scv)
    assert math.isnan(observe_load([4.5, 4.9], now=5.0, window_s=1.0).scv)
    assert observe_load([1.0, 4.5, 4.9, 5.5], now=5.0, window_s=1.0).count == 2  # (4, 5] only
    with pytest.raises(ValueError, match="window_s"):
        observe_load([], now=1.0, window_s=0)


def rule(load: ObservedLoad, plans) -> list[Candidate]:
    """Predictions as a rule of the load: coarse is cheap but misses the SLO above 40 req/s; fine always meets it."""
    busy = load.rate >= 40
    return [Candidate("coarse", 0.90 if busy else 0.999, 1.0), Candidate("fine", 0.999, 2.0)]


def test_the_loop_switches_to_the_plan_the_load_calls_for_and_no_request_fails():
    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    controller = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=0))
    with shoal.local(paced, "coarse", config) as svc:
        loop = svc.adapt(["coarse", "fine"], rule, controller, window_s=0.5)
        sent = []

        def drive(rate: float, seconds: float) -> None:
            end = time.monotonic() + seconds
            i = len(sent)
            while time.monotonic() < end:
                sent.append((i, svc.submit([i])))
                i += 1
                time.sleep(1 / rate)

        drive(15, 1.6)  # light: coarse is best, nothing switches
        assert loop.switches == 0
        assert all(e["best"] == "coarse" for e in loop.history if "best" in e)
        heavy = threading.Thread(target=drive, args=(70, 3.0))
        heavy.start()
        wait_until(lambda: loop.switches >= 1, timeout=10, message="a switch to fine under heavy load")
        heavy.join()
        assert svc.status()["apps"][0]["plan"] == "fine"
        switched = [e for e in loop.history if e.get("switch_to")]
        assert switched[0]["switch_to"] == "fine" and "meets the SLO target" in switched[0]["reason"]
        assert switched[0]["load"]["rate"] >= 40
        for i, f in sent:
            np.testing.assert_array_equal(f.result(timeout=30).output, paced_reference([i]))
        assert svc.status()["apps"][0]["adaptive"][-1]["plan"] in ("coarse", "fine")


def test_checks_between_windows_switch_on_an_emergency_before_the_window_ends():
    """Windows of 3 s, checks every 0.3 s: heavy load sent right after a window began is answered by a check
    (between_windows), long before the window's end; requests all succeed."""
    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    controller = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=60))
    with shoal.local(paced, "coarse", config) as svc:
        loop = svc.adapt(["coarse", "fine"], rule, controller, window_s=3.0, emergency_s=0.3)
        wait_until(lambda: len(loop.history) >= 1, timeout=10, message="a first window")
        began = time.monotonic()
        sent = []
        i = 0
        while loop.switches == 0 and time.monotonic() - began < 2.5:  # stop before the window would switch
            sent.append((i, svc.submit([i])))
            i += 1
            time.sleep(1 / 70)
        wait_until(lambda: loop.switches >= 1, timeout=10, message="a switch")
        entry = next(e for e in loop.history if e.get("switch_to"))
        assert entry["switch_to"] == "fine" and entry["between_windows"] and "between windows" in entry["reason"]
        for i, f in sent:
            np.testing.assert_array_equal(f.result(timeout=30).output, paced_reference([i]))


def test_a_forecast_warms_the_burst_plan_before_repeating_bursts():
    """Bursts of 70 req/s for 1 s every 4 s over 15 req/s, on the real runtime: once 3.5 periods have been seen the
    loop fits the period and moves to fine ahead of onsets and back to coarse between them, by a schedule over the
    forecast windows ("forecast" switches; each priced at the 0.3 s these switches take here); every request
    succeeds."""
    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    controller = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=0))
    with shoal.local(paced, "coarse", config) as svc:
        look = Lookahead(14.0, bin_s=0.25)
        loop = svc.adapt(["coarse", "fine"], rule, controller, window_s=0.5, lookahead=look, switch_overlap_s=0.3)
        sent = []
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 26.0:
            sent.append((i, svc.submit([i])))
            i += 1
            time.sleep(1 / 70 if (time.monotonic() - t0) % 4.0 < 1.0 else 1 / 15)
        ahead = [e for e in loop.history if e.get("switch_to") and e["reason"].startswith("forecast")]
        assert {e["switch_to"] for e in ahead} == {"coarse", "fine"}, [e.get("reason") for e in loop.history]
        fitted = [e["forecast"] for e in loop.history if e.get("forecast")]
        assert fitted and fitted[-1]["period_s"] == pytest.approx(4.0, abs=0.3)
        for i, f in sent:
            np.testing.assert_array_equal(f.result(timeout=30).output, paced_reference([i]))


def test_a_failing_predictor_is_logged_and_the_plan_is_kept():
    def broken(load, plans):
        raise RuntimeError("no model")

    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        loop = svc.adapt(["fine"], broken, window_s=0.2)
        wait_until(lambda: any("error" in e for e in loop.history), timeout=5)
        assert "RuntimeError: no model" in loop.history[0]["error"]
        assert svc.invoke([1.0]).tolist() == [9.0]
        assert svc.status()["apps"][0]["plan"] == "coarse"


def test_a_window_in_which_no_plan_can_be_scored_keeps_the_plan_and_says_why():
    """A predictor that scores nothing at some loads (the analytical model at an idle window's rate 0) is not a
    failure: the window keeps the plan, its record says why, and emergency checks between windows pass over it."""

    def idle_unscored(load: ObservedLoad, plans) -> list[Candidate]:
        return [] if load.rate == 0 else [Candidate("coarse", 0.999, 1.0), Candidate("fine", 0.999, 2.0)]

    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        loop = svc.adapt(["fine"], idle_unscored, window_s=0.2, emergency_s=0.05)
        wait_until(lambda: len(loop.history) >= 2, timeout=5, message="two idle windows")
        assert not [e for e in loop.history if "error" in e]
        kept = loop.history[0]
        assert kept["plan"] == "coarse" and kept["switch_to"] is None and "best" not in kept
        assert kept["reason"] == "no plan could be scored at this load (0 req/s); staying on coarse"
        assert kept["load"]["count"] == 0
        assert svc.invoke([1.0]).tolist() == [9.0]

        def scored() -> bool:  # a request each poll: on a loaded machine a late window's look-back can miss just one
            svc.invoke([1.0])
            return any("best" in e for e in loop.history)

        wait_until(scored, timeout=10, message="a window with traffic, scored")


@pytest.mark.parametrize("horizon_as", ["mix", "load"])
def test_serve_adaptive_follows_a_measured_table_over_http(tmp_path, horizon_as):
    import httpx
    from apps_for_tests import ref

    from shoal.predict.measured import MeasuredPredictor, Measurement
    from shoal.testing import ServerProcess

    rows = [
        Measurement("fine", 1, 1.0, 0.999, 2.0, 20),
        Measurement("fine", 50, 1.0, 0.999, 3.0, 30),
        Measurement("coarse", 1, 1.0, 0.999, 1.0, 20),
        Measurement("coarse", 50, 1.0, 0.999, 1.5, 30),
    ]
    table = MeasuredPredictor(rows, slo=str(paced.slo)).save(tmp_path / "paced.json")
    args = ["--adaptive", str(table), "--adaptive-window", "0.3", "--adaptive-dwell", "0", "--adaptive-horizon", "0.9"]
    args += ["--adaptive-horizon-as", horizon_as, "--adaptive-emergency", "0.1"]
    metered = horizon_as == "load"  # one of the two also with the meter (exploring): its windows say what it metered
    args += ["--adaptive-explore"] if metered else []
    with ServerProcess(ref("paced"), "fine", *args) as srv:
        done = threading.Event()
        codes: list[int] = []

        def steady() -> None:  # steady traffic, so that every window has requests in it (a horizon starts with it)
            with httpx.Client(base_url=srv.url, timeout=10) as client:
                while not done.is_set():
                    codes.append(client.post("/apps/paced/invoke", json=[1]).status_code)
                    time.sleep(0.01)

        def weighed_over_the_horizon() -> bool:  # switched, and the horizon (3 windows of traffic) was weighed
            history = srv.client.get("/status").json()["apps"][0]["adaptive"]
            return any(e.get("switch_to") == "coarse" for e in history) and any(
                "over the recent loads" in e.get("reason", "") for e in history
            )

        sender = threading.Thread(target=steady)
        sender.start()
        try:
            wait_until(weighed_over_the_horizon, timeout=15, message="a switch, and a window weighed over the horizon")
        finally:
            done.set()
            sender.join()
        assert codes and set(codes) == {200}
        assert srv.client.get("/apps").json()["paced"]["plan"] == "coarse"
        history = srv.client.get("/status").json()["apps"][0]["adaptive"]
        # in load mode the horizon's arrivals were scored as one load (from the second window on: 0.6 s, then 0.9 s)
        spans = [e["horizon_load"]["window_s"] for e in history if "horizon_load" in e]
        assert (spans and 0.6 <= spans[0] <= 0.9) if horizon_as == "load" else not spans
        assert any("served" in e for e in history) == metered
        assert all("slo_offset" in e["served"] for e in history if "served" in e)  # --adaptive-explore: SLO measured
        assert httpx.post(f"{srv.url}/apps/paced/invoke", json=[1], timeout=10).json()["output"] == [9.0]


def steady_driver(svc, sent: list, stop: threading.Event):
    """A thread's target that submits 20 req/s, evenly spaced, to ``svc`` until ``stop``: the load holds window after
    window. Each request's input and future go to ``sent``."""

    def drive() -> None:
        i, t = 0, time.monotonic()
        while not stop.is_set():
            sent.append((i, svc.submit([i])))
            i += 1
            t += 0.05
            time.sleep(max(0.0, t - time.monotonic()))

    return drive


def test_served_costs_meter_the_plan_try_a_close_call_and_keep_the_cheaper_one():
    """A table that prices coarse 3.5 % above fine (wrong: coarse runs one instance of a quarter vCPU where fine
    runs four): the controller alone would stay on fine. With ``ServedCosts``
    the loop meters fine from the host's meter (``Host.spent``), tries coarse, meters it far below fine, and keeps
    it; no request fails."""
    from shoal.policy.served import ServedCosts

    prices = shoal.runtime.meter.DEFAULT_PRICES
    fine_cost = 4 * (0.25 * prices.per_vcpu_s + 64 / 1024 * prices.per_gib_s)  # one instance of each function

    def table(load: ObservedLoad, plans) -> list[Candidate]:
        return [Candidate("fine", 0.999, 0.85 * fine_cost), Candidate("coarse", 0.999, 0.88 * fine_cost)]

    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    controller = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=0))
    with shoal.local(paced, "fine", config) as svc:
        served = ServedCosts(min_windows=3, settle_s=2.0)  # windows of 1 s, an autoscaler settled in 2
        loop = svc.adapt(["coarse", "fine"], table, controller, window_s=1.0, served=served)
        sent: list = []
        stop = threading.Event()
        drive = steady_driver(svc, sent, stop)

        driver = threading.Thread(target=drive)
        driver.start()
        try:
            wait_until(lambda: loop.switches >= 1, timeout=30, message="a trial of coarse")

            def metered_on_coarse() -> bool:
                last = loop.history[-1]
                return last["plan"] == "coarse" and last.get("served", {}).get("ratio") is not None

            wait_until(metered_on_coarse, timeout=30, message="coarse metered for three windows")
            time.sleep(2.5)  # two more windows: the trial concluded, no way back
        finally:
            stop.set()
            driver.join()
        moves = [e for e in loop.history if e.get("switch_to")]
        assert [(e["plan"], e["switch_to"]) for e in moves] == [("fine", "coarse")]
        assert "trying it to meter it" in moves[0]["reason"]
        assert svc.status()["apps"][0]["plan"] == "coarse"
        ratios = {e["plan"]: e["served"]["ratio"] for e in loop.history if e.get("served", {}).get("ratio")}
        assert ratios["fine"] > 1.0  # fine cost more than the table said
        assert ratios["coarse"] * 0.88 < 0.75 * ratios["fine"] * 0.85  # coarse far less than fine, by the meter
        for i, f in sent:
            np.testing.assert_array_equal(f.result(timeout=30).output, paced_reference([i]))


def test_spent_is_what_the_current_plans_instances_have_cost():
    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    with shoal.local(paced, "fine", config) as svc:
        svc.invoke([1.0])
        host = svc.host
        first = host.spent("paced")
        time.sleep(0.5)
        rate = host.cost_rate("paced")
        second = host.spent("paced")
        assert first > 0 and second - first == pytest.approx(rate * 0.5, rel=0.3)
        assert second <= host.meter.resource_cost(host.now()).usd  # the app's plan only


def test_outcomes_count_what_each_plan_served_within_the_slo():
    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    with shoal.local(paced, "fine", config) as svc:
        for i in range(5):
            svc.invoke([float(i)])
        within = sum(r.ok and r.latency_s <= paced.slo.latency_s for r in svc.host.meter.records("paced"))
        assert within >= 4  # the first may wait on a cold start
        assert svc.host.outcomes("paced") == {"fine": (5, within)}
        with pytest.raises(NotFound):
            svc.host.outcomes("nope")


def test_an_slo_trial_tries_a_plan_the_table_calls_short_and_keeps_it_where_it_serves_the_target():
    """A table that calls coarse just short of a 0.9 target (0.88) at 60 % of fine's price: the controller alone
    stays on fine. With ``ServedCosts(slo_trials=True)`` the loop banks an error budget on fine, tries coarse, holds
    it while it is measured (the controller would leave a plan called short), finds it serving every request within
    the SLO, and keeps it; no request fails."""
    from shoal.policy.served import ServedCosts

    def table(load: ObservedLoad, plans) -> list[Candidate]:
        return [Candidate("fine", 0.999, 1.0), Candidate("coarse", 0.88, 0.6)]

    config = HostConfig(tick_s=0.05, stable_window_s=4, panic_window_s=1)
    controller = GranularityController(ControllerConfig(slo_target=0.9, confirm_windows=2, min_dwell_s=0))
    with shoal.local(paced, "fine", config) as svc:
        served = ServedCosts(min_windows=3, settle_s=2.0, slo_trials=True, min_requests=40, stop_excess=3.0)
        loop = svc.adapt(["coarse", "fine"], table, controller, window_s=1.0, served=served)
        sent: list = []
        stop = threading.Event()
        drive = steady_driver(svc, sent, stop)

        def judged_on_coarse() -> bool:
            last = loop.history[-1]
            return last["plan"] == "coarse" and last.get("served", {}).get("slo_offset") is not None

        driver = threading.Thread(target=drive)
        driver.start()
        try:
            wait_until(lambda: loop.switches >= 1, timeout=30, message="a trial of coarse")
            wait_until(judged_on_coarse, timeout=30, message="coarse measured for 40 requests")
            time.sleep(3.5)  # three more windows: the controller, with coarse's figures corrected, keeps it
        finally:
            stop.set()
            driver.join()
        moves = [e for e in loop.history if e.get("switch_to")]
        assert [(e["plan"], e["switch_to"]) for e in moves] == [("fine", "coarse")]
        assert "trying it until it served 40 requests" in moves[0]["reason"]
        assert any(e["reason"].startswith("trying coarse") for e in loop.history)  # held while measured
        assert svc.status()["apps"][0]["plan"] == "coarse"
        offsets = [e["served"]["slo_offset"] for e in loop.history if e["plan"] == "coarse" and "served" in e]
        assert 0.88 + offsets[-1] >= 0.9  # coarse served the target: a few ms a request against 200 ms
        for i, f in sent:
            np.testing.assert_array_equal(f.result(timeout=30).output, paced_reference([i]))
        counted = svc.host.outcomes("paced")
        assert sum(n for n, _ in counted.values()) == len(sent)
