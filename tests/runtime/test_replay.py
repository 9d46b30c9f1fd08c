"""Open-loop replay on the real runtime: per-request outcomes and per-window plan, instances and cost."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from apps_for_tests import paced, paced_reference

import shoal
from shoal.runtime.host import HostConfig
from shoal.runtime.replay import ReplayResult, replay
from shoal.workload.generators import poisson


def test_replay_scores_every_request_and_tracks_a_switch_in_the_windows():
    times = poisson(40.0, 3.0, seed=2)
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:

        async def run():
            async def switch_later():
                await asyncio.sleep(1.8)
                await svc.host.switch_plan("paced", shoal.Plan.fine(paced))

            switching = asyncio.ensure_future(switch_later())
            res = await replay(svc.host, "paced", times, lambda i: [float(i)], sample_s=0.1)
            await switching
            return res

        res = svc._run(run(), timeout=60)
    assert (res.status == 200).all() and not np.isnan(res.latency_s).any()
    assert set(res.plan) == {"coarse", "fine"}
    assert res.plan[0] == "coarse" and res.plan[-1] == "fine"
    costs = [s["cost_usd"] for s in res.samples]
    assert costs == sorted(costs) and costs[-1] > 0
    assert max(s["instances"] for s in res.samples) >= 4  # the fine plan's four functions
    assert all(s["late_s"] >= 0 for s in res.samples)
    wins = res.windows(1.0, slo_s=1.0)
    assert sum(w["requests"] for w in wins) == len(times)
    busy = [w for w in wins if w["requests"]]
    assert busy[0]["plan"] == "coarse" and busy[-1]["plan"] == "fine"
    assert all(w["slo_hit"] == 1.0 for w in wins if w["requests"])
    assert sum(w["cost_usd"] for w in wins) == pytest.approx(res.cost_between(0, len(wins) * 1.0), rel=1e-9)
    assert res.slo_hit(1e-6) == 0.0  # nothing is that fast
    row = res.measurement(slo_s=1.0, start=0.0, end=1.5)
    assert row.plan == "coarse" and row.slo_hit == 1.0 and row.cost_per_s > 0
    assert row.rate == pytest.approx(((times >= 0) & (times < 1.5)).sum() / 1.5)
    again = ReplayResult.from_dict(json.loads(json.dumps(res.to_dict())))  # a run saved by a benchmark, read back
    assert again.measurement(slo_s=1.0, start=0.0, end=1.5) == row
    assert again.windows(1.0, slo_s=1.0) == wins


def test_replay_outputs_are_the_apps_outputs():
    with shoal.local(paced, "fine") as svc:
        outs = []

        def value_of(i):
            outs.append(i)
            return [float(i)]

        res = svc._run(replay(svc.host, "paced", [0.0, 0.01, 0.02], value_of), timeout=30)
        assert outs == [0, 1, 2] and (res.status == 200).all()
        np.testing.assert_array_equal(svc.invoke([2.0]), paced_reference([2.0]))


def test_replay_refuses_unsorted_times():
    with shoal.local(paced, "coarse") as svc, pytest.raises(ValueError, match="sorted"):
        svc._run(replay(svc.host, "paced", [1.0, 0.5], lambda i: [1.0]), timeout=30)


def test_a_stalled_event_loop_shows_in_the_samples_late_s():
    """A blocking call on the loop that sends and serves the load (0.3 s here) is seen in the run's samples, so a
    stall in a long experiment can be told from the plan's own queueing afterwards; the requests still finish."""
    import time

    times = poisson(20.0, 2.0, seed=3)
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:

        async def run():
            asyncio.get_running_loop().call_later(1.0, time.sleep, 0.3)  # the stall: blocks the loop for 0.3 s
            return await replay(svc.host, "paced", times, lambda i: [float(i)], sample_s=0.05)

        res = svc._run(run(), timeout=60)
    assert (res.status == 200).all()
    stalled = [s for s in res.samples if s["late_s"] >= 0.2]
    assert stalled and all(0.5 < s["t"] < 1.8 for s in stalled)
