"""Granularity is a deployment choice, not a code change: under every valid plan the same inputs give the same outputs.

A property test over random plans of random DAGs. Each stage computes a deterministic numeric function of its inputs
that depends on the stage and on the order of its arguments, so a plan that dropped, reordered or misrouted a value
would change the output. Plans are built by contracting random edges of the fine plan (keeping only contractions
that Plan accepts), and also as random partitions checked against an independent validity oracle.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import shoal
from shoal.app import INPUT, App, Plan, PlanError, run_stages

# A DAG spec: for each stage, the indices of its upstream stages (in argument order) and whether it has a load.
DagSpec = tuple[tuple[tuple[int, ...], bool], ...]


@st.composite
def dags(draw: st.DrawFn, max_stages: int = 7) -> DagSpec:
    n = draw(st.integers(1, max_stages))
    stages: list[tuple[tuple[int, ...], bool]] = []
    for i in range(n):
        after: tuple[int, ...] = ()
        if i > 0:
            # unique=True keeps the order drawn, so argument order is random too; empty means another source
            after = tuple(draw(st.lists(st.integers(0, i - 1), unique=True, max_size=min(i, 3))))
        stages.append((after, draw(st.booleans())))
    consumed = {u for after, _ in stages for u in after}
    sinks = [i for i in range(n) if i not in consumed]
    if len(sinks) > 1:  # exactly one sink: merge the current sinks in a random order
        stages.append((tuple(draw(st.permutations(sinks))), draw(st.booleans())))
    return tuple(stages)


def make_stage_fn(i: int, has_load: bool):
    def fn(*args: Any) -> np.ndarray:
        if has_load:
            state, *xs = args
            assert state["stage"] == i, "load result must come first"
            offset = state["offset"]
        else:
            xs, offset = list(args), 0.0
        # Position-dependent weights: swapping two arguments changes the result.
        acc = np.full_like(xs[0], float(i + 1))
        for k, x in enumerate(xs):
            acc = acc + (k + 2) * x
        return acc / 4.0 + offset

    return fn


def make_load(i: int):
    return lambda: {"stage": i, "offset": 0.5 * i + 0.25}


def build_app(spec: DagSpec, name: str = "prop") -> App:
    app = App(name)
    for i, (after, has_load) in enumerate(spec):
        app.stage(
            make_stage_fn(i, has_load),
            name=f"s{i}",
            after=[f"s{u}" for u in after],
            load=make_load(i) if has_load else None,
        )
    app.validate()
    return app


def run_plan_in_process(app: App, plan: Plan, x: Any) -> Any:
    """Run the plan function by function, as the runtime would: each function sees only its inputs, and only its
    outputs leave it."""
    assert sorted(s for f in plan.functions for s in f.stages) == sorted(app.stages)
    states = {n: s.load() for n, s in app.stages.items() if s.load is not None}
    values: dict[str, Any] = {INPUT: x}
    done: set[str] = set()
    for f in plan.functions:
        assert set(f.upstream) <= done, f"{f.name} runs before its upstream functions"
        given_values = {k: values[k] for k in f.inputs}  # KeyError: an input no earlier function produced
        out = run_stages(app, f.stages, given_values, {s: states[s] for s in f.stages if s in states})
        for o in f.outputs:
            assert o in f.stages
            values[o] = out[o]
        done.add(f.name)
    return values[app.sink]


def groups_of(owner: dict[str, int]) -> list[list[str]]:
    out: dict[int, list[str]] = {}
    for s, g in owner.items():
        out.setdefault(g, []).append(s)
    return list(out.values())


def contracted_plan(app: App, picks: Sequence[int], seed: int) -> Plan:
    """Start from the fine plan and contract the edges ``picks`` (indices, modulo the number of edges) one by one,
    keeping each contraction that Plan accepts; ``seed`` shuffles the order of the groups and of their stages."""
    owner = {s: i for i, s in enumerate(app.stages)}
    edges = [(u, s) for s, st_ in app.stages.items() for u in st_.after]
    for pick in picks if edges else ():
        u, v = edges[pick % len(edges)]
        if owner[u] == owner[v]:
            continue
        trial = {s: (owner[u] if g == owner[v] else g) for s, g in owner.items()}
        try:
            Plan(app, groups_of(trial))
        except PlanError:
            continue
        owner = trial
    rng = random.Random(seed)
    groups = groups_of(owner)
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)
    return Plan(app, groups)


contractions = st.lists(st.integers(0, 63), max_size=16)
seeds = st.integers(0, 2**16)


def valid_by_oracle(app: App, groups: Sequence[Sequence[str]]) -> bool:
    """Independent of Plan: every group is connected, and the graph of groups has no cycle."""
    owner = {s: i for i, g in enumerate(groups) for s in g}
    for g in groups:
        members, seen, todo = set(g), {g[0]}, [g[0]]
        while todo:
            s = todo.pop()
            for n in members:
                if n not in seen and (n in app[s].after or s in app[n].after):
                    seen.add(n)
                    todo.append(n)
        if seen != members:
            return False
    edges = {(owner[u], owner[s]) for s, st_ in app.stages.items() for u in st_.after if owner[u] != owner[s]}
    indegree = {i: 0 for i in range(len(groups))}
    for _, b in edges:
        indegree[b] += 1
    ready = [i for i, d in indegree.items() if d == 0]
    removed = 0
    while ready:
        a = ready.pop()
        removed += 1
        for src, b in edges:
            if src == a:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    return removed == len(groups)


inputs = hnp.arrays(
    np.float64,
    st.integers(1, 5),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


def assert_same(got: Any, want: Any) -> None:
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# -- in-process ---------------------------------------------------------------------------------------------------


def test_stage_functions_depend_on_argument_order():
    """The property test is only as strong as its stages: check that a swapped argument changes the output."""
    fn = make_stage_fn(3, False)
    a, b = np.array([1.0, 2.0]), np.array([5.0, -1.0])
    assert not np.array_equal(fn(a, b), fn(b, a))
    assert not np.array_equal(make_stage_fn(1, False)(a), make_stage_fn(2, False)(a))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=dags(), x=inputs, picks=contractions, seed=seeds)
def test_every_contracted_plan_gives_the_same_output_in_process(spec, x, picks, seed):
    app = build_app(spec)
    want = app.run(x)
    for plan in (Plan.fine(app), Plan.coarse(app), contracted_plan(app, picks, seed)):
        assert_same(run_plan_in_process(app, plan, x), want)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=dags(), x=inputs, data=st.data())
def test_random_partitions_are_valid_exactly_when_oracle_says_and_agree(spec, x, data):
    app = build_app(spec)
    stage_names = list(app.stages)
    labels = data.draw(st.lists(st.integers(0, len(stage_names) - 1), min_size=len(stage_names)))
    owner = dict(zip(stage_names, labels, strict=False))
    groups = data.draw(st.permutations(groups_of(owner)), label="groups")
    try:
        plan = Plan(app, groups)
    except PlanError as e:
        assert not valid_by_oracle(app, groups), f"valid plan {groups} refused: {e}"
        # the refusal names a group of the plan: as written, or as the function it would be (stages in app order)
        written = {repr("+".join(g)) for g in groups}
        as_function = {repr("+".join(s for s in stage_names if s in g)) for g in groups}
        assert any(label in str(e) for label in written | as_function), str(e)
        return
    assert valid_by_oracle(app, groups), f"invalid plan {groups} accepted"
    assert_same(run_plan_in_process(app, plan, x), app.run(x))


# -- the real runtime ---------------------------------------------------------------------------------------------


# Explicit examples keep the runtime part strong whatever hypothesis draws: functions with several inputs and
# several outputs, fan-in in an order other than definition order, and loads.
DIAMOND: DagSpec = (((), True), ((0,), False), ((0,), True), ((2, 1), False))
WIDE: DagSpec = (((), False), ((), True), ((1, 0), False), ((0,), True), ((2,), False), ((4, 3, 1), True))


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@example(spec=DIAMOND, x=np.array([1.0, -2.0, 3.5]), picks=[0], seed=1)  # s0+s1 feeds s2 and s3
@example(spec=WIDE, x=np.array([0.5, 7.0]), picks=[0, 2, 4], seed=3)
@given(spec=dags(max_stages=5), x=inputs, picks=contractions, seed=seeds)
def test_runtime_gives_the_same_output_under_random_plans(spec, x, picks, seed):
    """The real embedded runtime (zygote, pools, instances, data plane) under fine, coarse and two random plans,
    deployed side by side as four copies of the application."""
    apps = [build_app(spec, f"prop{k}") for k in range(4)]
    plans = [
        Plan.fine(apps[0]),
        Plan.coarse(apps[1]),
        contracted_plan(apps[2], picks, seed),
        contracted_plan(apps[3], [*picks, *range(8)], seed + 1),
    ]
    want = apps[0].run(x)
    with shoal.local(list(zip(apps, plans, strict=True))) as svc:
        for app in apps:
            assert_same(svc.invoke(x, app=app.name, timeout=30), want)
