"""The planner's search: exhaustive for small spaces, coordinate descent beyond the budget, and the choice rule."""

from __future__ import annotations

import itertools
import math

import pytest

import shoal
from shoal.predict.planner import Planner, Score, Setting


def pipeline() -> shoal.App:
    app = shoal.App("pipe", slo="p99:100ms")
    a = app.stage(lambda x: x, name="pre", vcpu=0.5, memory_mb=128)
    b = app.stage(lambda x: x, name="model", after=a, vcpu=1.0, memory_mb=512, batch=True)
    app.stage(lambda x: x, name="post", after=b, vcpu=0.5, memory_mb=128)
    return app


# A scoring rule standing in for a predictor (the planner is tested, not the prediction): every function costs its
# vCPU; latency is the sum over functions of work / vCPU plus 5 ms per hop, shrunk by batching under load; the SLO
# hit rate falls as latency approaches 100 ms.
WORK_MS = {"pre": 10.0, "model": 60.0, "post": 10.0}


def rule(plan: shoal.Plan, rate: float) -> Score:
    latency, cost = 0.0, 0.0
    for f in plan.functions:
        vcpu = f.resources.vcpu
        work = sum(WORK_MS[s] for s in f.stages)
        if "model" in f.stages and f.config.max_batch_size > 1:
            work *= 0.5 if rate > 20 else 1.2
        latency += work / vcpu
        cost += vcpu * (1 + rate / 50)
    latency += 5.0 * (len(plan.functions) - 1)
    hit = 1.0 / (1.0 + math.exp((latency - 90.0) / 5.0))
    return Score(hit, cost, {"latency_ms": latency})


def planner(**kw) -> Planner:
    app = pipeline()
    return Planner(app, rule, slo_target=0.9, vcpu_options=[0.5, 1.0, 2.0], batch_options=[1, 8], **kw)


def brute_force(p: Planner, rate: float) -> list[tuple[float, float, str]]:
    out = []
    for groups in p.groupings:
        for settings in itertools.product(*[p.options(g) for g in groups]):
            plan = p.build(groups, settings)
            s = rule(plan, rate)
            out.append((s.slo_hit, s.cost_per_s, plan.label))
    return out


@pytest.mark.parametrize("rate", [5.0, 40.0])
def test_the_exhaustive_search_returns_the_cheapest_plan_that_meets_the_target(rate):
    p = planner()
    best = p.best(rate)
    every = brute_force(p, rate)
    meeting = [c for c in every if c[0] >= 0.9]
    assert best.score.slo_hit >= 0.9
    assert best.score.cost_per_s == pytest.approx(min(c[1] for c in meeting))
    assert len(p.search(rate)) == len({c[2] for c in every})


def test_batching_is_offered_only_to_functions_with_a_batchable_stage():
    p = planner()
    assert {s.max_batch_size for s in p.options(("pre",))} == {1}
    assert {s.max_batch_size for s in p.options(("pre", "model"))} == {1, 8}


def test_a_built_plan_carries_its_settings_and_names_them():
    p = planner()
    plan = p.build([("pre", "model"), ("post",)], [Setting(2.0, 8), Setting()])
    f = plan["pre+model"]
    assert f.resources.vcpu == 2.0 and f.config.max_batch_size == 8
    assert f.resources.memory_mb == 640  # declared memory of both stages is kept
    assert plan["post"].resources.vcpu == 0.5
    assert plan.label == "pre+model,post [pre+model: vcpu=2,batch<=8]"


def test_beyond_the_budget_coordinate_descent_still_finds_the_optimum_of_a_separable_rule():
    exhaustive, descent = planner(), planner(budget=1)
    for rate in (5.0, 40.0):
        a, b = exhaustive.best(rate), descent.best(rate)
        assert b.score.slo_hit >= 0.9
        assert b.score.cost_per_s == pytest.approx(a.score.cost_per_s)
        assert len(descent.search(rate)) < len(exhaustive.search(rate))


def test_when_nothing_meets_the_target_the_highest_hit_rate_comes_first():
    p = Planner(pipeline(), rule, slo_target=0.9999999, vcpu_options=[0.5], batch_options=[1])
    ranked = p.search(5.0)
    assert all(c.score.slo_hit < 0.9999999 for c in ranked)
    assert ranked[0].score.slo_hit == max(c.score.slo_hit for c in ranked)
    cands = p.candidates(5.0, limit=2)
    assert len(cands) == 2 and cands[0].plan == ranked[0].label


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="slo_target"):
        Planner(pipeline(), rule, slo_target=0)
    with pytest.raises(ValueError, match="vcpu_options"):
        Planner(pipeline(), rule, vcpu_options=[0.0])
    with pytest.raises(ValueError, match="batch_options"):
        Planner(pipeline(), rule, batch_options=[0])
