"""Skipping ticks changes nothing: on random small workloads (several deployments sharing a small cluster, so
placements are refused and the order pools act in matters; bursts and lulls, so pools panic, sleep and scale to
zero), the run that looks at a pool only when its observation or its policies' decision could change gives the same
latencies, instance series, cold starts and cost as the run that observes every pool on every tick."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.app import App, FunctionConfig, Plan
from shoal.sim import ClusterSpec, Deployment, NodeSpec, SimConfig, Simulator, StageModel


def app_of(shape: str) -> App:
    app = App(shape, slo="p99:200ms")
    if shape == "one":
        app.stage(lambda x: x, name="a", vcpu=1.0)
    else:
        app.stage(lambda x: x, name="a", vcpu=1.0)
        app.stage(lambda x: x, name="b", after="a", vcpu=1.0)
    return app


deployment = st.tuples(
    st.sampled_from(["one", "chain"]),
    st.sampled_from(["coarse", "fine"]),
    st.floats(0.005, 0.4),  # mean service time
    st.sampled_from([0.0, 1.0]),  # cv
    st.sampled_from([0.1, 2.0, 7.5, 30.0]),  # keep-alive
    st.sampled_from([0.0, 0.3, 1.0, 30.0]),  # surplus pause
    st.integers(0, 1),  # min instances
    st.integers(1, 6),  # max instances
    st.sampled_from([1, 2, 8]),  # batch size
)
burst = st.tuples(st.floats(0, 150), st.floats(0.5, 15), st.floats(1, 60))  # start, length, rate


def run(deps, times, which, cfg: SimConfig, nodes: int):
    sim = Simulator(ClusterSpec.uniform(nodes, NodeSpec(cpus=4, memory_mb=1 << 16)), deps, cfg)
    r = sim.run(times, which, until=float(times[-1]) + 90.0)
    return r, sim


@settings(max_examples=40, deadline=None)
@given(
    st.lists(deployment, min_size=1, max_size=4),
    st.lists(burst, min_size=1, max_size=5),
    st.sampled_from([0.1, 0.25, 0.3]),
    st.sampled_from([(60.0, 6.0), (10.0, 1.0), (7.3, 2.9)]),
    st.integers(1, 3),
    st.integers(0, 2**16),
)
def test_skipping_ticks_gives_the_run_of_ticking_every_pool(deps_spec, bursts, tick_s, windows, nodes, seed) -> None:
    rng = np.random.default_rng(seed)
    deps = []
    for i, (shape, plan_kind, mean, cv, keep, surplus, lo, hi, batch) in enumerate(deps_spec):
        app = app_of(shape)
        cfg = FunctionConfig(
            min_instances=lo,
            max_instances=max(hi, lo),
            keep_alive_s=keep,
            surplus_idle_s=surplus,
            queue_limit=50,
            max_batch_size=batch,
        )
        plan = Plan.coarse(app, default=cfg) if plan_kind == "coarse" else Plan.fine(app, default=cfg)
        stages = {s: StageModel.cpu(mean, cv=cv) for s in app.stages}
        deps.append(Deployment(app, plan, stages, name=f"d{i}"))
    parts = [start + np.sort(rng.uniform(0, length, rng.poisson(rate * length) + 1)) for start, length, rate in bursts]
    times = np.sort(np.concatenate(parts))
    which = rng.integers(0, len(deps), times.size)
    stable, panic = windows
    common = dict(tick_s=tick_s, stable_window_s=stable, panic_window_s=panic, sample_s=1.0, seed=seed)
    a, sim_a = run(deps, times, which, SimConfig(skip_idle_ticks=True, **common), nodes)
    b, sim_b = run(deps, times, which, SimConfig(skip_idle_ticks=False, **common), nodes)
    assert list(a.latency) == list(b.latency)
    assert list(a.status) == list(b.status)
    assert a.series == b.series
    for key in ("cold_starts", "placements_refused", "resource_cost", "user_bill", "instances_alive_at_end"):
        assert a.totals[key] == b.totals[key], key
    assert [p.desired for p in sim_a.all_pools] == [p.desired for p in sim_b.all_pools]
    assert a.totals["events"] == b.totals["events"]
