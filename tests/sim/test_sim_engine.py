"""The simulation drives the runtime's own policies: queueing agrees with theory, scaling follows the autoscaler,
instances go after the keep-alive, GPU shares take their measured latency, and runs repeat exactly."""

import math

import numpy as np
import pytest

from shoal.app import App, FunctionConfig, Plan
from shoal.policy.batching import decide_batch
from shoal.sim import ClusterSpec, Deployment, GpuShare, GpuTable, NodeSpec, SimConfig, Simulator, StageModel
from shoal.sim.gpu import default_table_path
from shoal.workload import generators as gen


def one_stage(slo="p99:100ms"):
    app = App("one", slo=slo)

    @app.stage()
    def work(x):
        return x

    return app


def chain():
    app = App("chain", slo="p99:200ms")

    @app.stage()
    def a(x):
        return x

    @app.stage(after="a")
    def b(x):
        return x

    return app


def simulate(dep, times, until, cluster=None, **cfg):
    sim = Simulator(cluster or ClusterSpec.uniform(2), [dep], SimConfig(**cfg))
    return sim.run(times, until=until)


@pytest.mark.parametrize(("cv", "expected_wait_s"), [(0.0, 0.005), (1.0, 0.010)])
def test_single_server_queue_matches_pollaczek_khinchine(cv, expected_wait_s):
    """One instance (min = max = 1), Poisson arrivals at 50/s, service 10 ms: utilisation 0.5. Pollaczek-Khinchine
    gives the mean wait lambda E[S^2] / (2 (1 - rho)): 5 ms for constant service (M/D/1), 10 ms at cv 1."""
    app = one_stage()
    plan = Plan.coarse(app, default=FunctionConfig(min_instances=1, max_instances=1, queue_limit=10_000))
    dep = Deployment(app, plan, {"work": StageModel.cpu(0.010, cv=cv)})
    times = gen.poisson(50.0, 3000.0, seed=7)
    r = simulate(dep, times, until=3010.0)
    lat = np.frombuffer(r.latency)
    warm = np.frombuffer(r.t_arrival) > 20.0  # leave out the first cold start
    wait = lat[warm].mean() - 0.010
    assert wait == pytest.approx(expected_wait_s, rel=0.12)


def test_instances_follow_the_autoscaler_and_its_max():
    """200 req/s at 50 ms each is a concurrency of 10; the target is 0.7 x 1 per instance, so KPA wants about
    10 / 0.7 = 15 instances. The cold-start backlog first panics it higher; once panic has lasted a stable window,
    the instances above the desired count go after their 1-s surplus pause. With max_instances 8 the pool is held
    at 8 and the queue overflows."""
    app = one_stage()
    cfg = FunctionConfig(max_instances=30, keep_alive_s=5.0)
    dep = Deployment(app, Plan.coarse(app, default=cfg), {"work": StageModel.cpu(0.05)})
    sim = Simulator(ClusterSpec.uniform(2), [dep], SimConfig(sample_s=1.0))
    r = sim.run(gen.poisson(200.0, 300.0, seed=1), until=300.0)
    assert max(r.series["instances"][:60]) > 20  # panic
    assert 14 <= sim.pools[0][0].desired <= 17
    steady = np.array(r.series["instances"][200:300])
    assert 14 <= np.median(steady) <= 18

    capped = Deployment(app, Plan.coarse(app, default=FunctionConfig(max_instances=8, queue_limit=50)), dep.stages)
    r2 = simulate(capped, gen.poisson(200.0, 120.0, seed=1), until=120.0, sample_s=1.0)
    assert max(r2.series["instances"]) == 8
    assert r2.summary()["rejected"] > 0


def test_scales_to_zero_after_the_stable_window_and_keep_alive():
    """A burst in the first 5 s, then nothing. KPA lets go only after a whole stable window (60 s) idle, and the
    keep-alive (30 s) has long passed then, so the last instance goes at about 65 s."""
    app = one_stage()
    dep = Deployment(app, Plan.coarse(app, default=FunctionConfig(keep_alive_s=30.0)), {"work": StageModel.cpu(0.01)})
    times = gen.poisson(20.0, 5.0, seed=3)
    r = simulate(dep, times, until=200.0, sample_s=1.0)
    inst = r.series["instances"]
    assert max(inst[:10]) >= 1
    gone = next(i for i in range(10, len(inst)) if inst[i] == 0)
    assert 64 <= gone <= 67
    assert r.totals["instances_alive_at_end"] == 0
    cost = r.totals["resource_cost"]
    assert cost["lifetime_s"] == pytest.approx(cost["instances"] * 65.0, rel=0.1)


def test_longer_keep_alive_than_the_window_holds_instances_longer():
    app = one_stage()
    dep = Deployment(app, Plan.coarse(app, default=FunctionConfig(keep_alive_s=120.0)), {"work": StageModel.cpu(0.01)})
    r = simulate(dep, gen.poisson(20.0, 5.0, seed=3), until=300.0, sample_s=1.0)
    inst = r.series["instances"]
    gone = next(i for i in range(10, len(inst)) if inst[i] == 0)
    assert 124 <= gone <= 127  # idle since about 5 s, plus 120 s of keep-alive


def test_skipping_idle_ticks_changes_nothing():
    """Pools looked at only when their observation or their policies' decision could change: same run as ticking
    every pool on every tick (tests/sim/test_sim_tick_skipping.py checks random workloads the same way)."""
    app = one_stage()
    plan = Plan.coarse(app, default=FunctionConfig(keep_alive_s=5.0))
    dep = Deployment(app, plan, {"work": StageModel.cpu(0.02, cv=0.5)})
    times = np.sort(np.concatenate([gen.poisson(30.0, 20.0, seed=1), 150 + gen.poisson(80.0, 10.0, seed=2)]))
    a = simulate(dep, times, until=400.0, skip_idle_ticks=True, sample_s=1.0)
    b = simulate(dep, times, until=400.0, skip_idle_ticks=False, sample_s=1.0)
    assert list(a.latency) == list(b.latency)
    assert a.series["instances"] == b.series["instances"]
    assert a.totals["resource_cost"] == b.totals["resource_cost"]


def test_runs_are_deterministic():
    app = one_stage()
    dep = Deployment(app, Plan.coarse(app), {"work": StageModel.cpu(0.02, cv=1.0)})
    times = gen.mmpp([5.0, 100.0], [10.0, 2.0], 120.0, seed=5)
    s1 = simulate(dep, times, until=150.0, seed=11).summary()
    s2 = simulate(dep, times, until=150.0, seed=11).summary()
    for key in ("latency_ms", "resource_cost", "user_bill", "cold_starts"):
        assert s1[key] == s2[key]


def test_fine_plan_pays_a_hop_and_a_cold_start_per_function():
    app = chain()
    models = {"a": StageModel.cpu(0.01, output_bytes=1_000_000), "b": StageModel.cpu(0.01)}
    node = NodeSpec(cpus=64, memory_mb=1 << 17)
    fine = Deployment(app, Plan.fine(app), models)
    coarse = Deployment(app, Plan.coarse(app), models)
    times = np.array([0.0, 10.0])
    rf = simulate(fine, times, until=20.0, cluster=ClusterSpec.uniform(1, node))
    rc = simulate(coarse, times, until=20.0, cluster=ClusterSpec.uniform(1, node))
    net = ClusterSpec.uniform(1).network
    hop = net.hop_s(True, 1_000_000)
    # second request: warm everywhere; fine = 10 ms + hop + 10 ms, coarse = 20 ms
    assert rf.latency[1] == pytest.approx(0.02 + hop)
    assert rc.latency[1] == pytest.approx(0.02)
    # first request: one cold start (0.25 s) per function on the fine plan, one in all on the coarse plan
    assert rf.latency[0] == pytest.approx(0.25 + 0.01 + hop + 0.25 + 0.01)
    assert rc.latency[0] == pytest.approx(0.25 + 0.02)
    assert rf.totals["user_bill"]["invocations"] == 4 and rc.totals["user_bill"]["invocations"] == 2


def test_batching_policy_forms_batches():
    """Four requests 1 ms apart to a batching function (batch 4, wait 10 ms): one batch, sent when it is full."""
    app = App("batched", slo="p99:1s")

    @app.stage(batch=True)
    def work(x):
        return x

    plan = Plan.coarse(app, default=FunctionConfig(max_batch_size=4, max_batch_wait_s=0.010, min_instances=1))
    dep = Deployment(app, plan, {"work": StageModel.cpu(0.02, batch_exponent=0.5)})
    times = np.array([5.000, 5.001, 5.002, 5.003, 6.0])
    r = simulate(dep, times, until=10.0)
    lat = list(r.latency)
    assert lat[:4] == pytest.approx([0.043, 0.042, 0.041, 0.040])  # sent at 5.003; 20 ms x 4 ** 0.5
    assert lat[4] == pytest.approx(0.010 + 0.020)  # alone: waits out its 10 ms, then runs


def test_the_unbatched_shortcut_is_what_the_batching_policy_says():
    for queued in (1, 2, 7):
        for wait in (0.0, 0.5):
            d = decide_batch(
                now=1.0, queued=queued, oldest_arrival=1.0, free_slots=1, max_batch_size=1, max_wait_s=wait
            )
            assert d.take == 1


@pytest.mark.skipif(default_table_path() is None, reason="the shared GPU table is not on this machine")
def test_gpu_function_runs_at_its_measured_latency_and_is_admitted():
    table = GpuTable.load()
    app = App("vision", slo="p99:200ms")

    @app.stage(gpu=0.5, gpu_memory_mb=4000)
    def backbone(x):
        return x

    plan = Plan.coarse(app, default=FunctionConfig(max_instances=4))
    share = GpuShare(sm=0.5, quota=0.6)
    dep = Deployment(app, plan, {"backbone": StageModel.gpu("resnet50")}, gpu_shares={"backbone": share})
    cluster = ClusterSpec.uniform(1, NodeSpec(cpus=16, memory_mb=1 << 16, gpus=1, gpu_memory_mb=16_000))
    sim = Simulator(cluster, [dep], SimConfig(sample_s=1.0), gpu_table=table)
    r = sim.run(np.array([1.0, 5.0]), until=10.0)
    assert r.latency[1] == pytest.approx(table.latency_s("resnet50", 1, 0.5, 0.6))
    # 0.5 x 0.6 = 0.3 of the device per instance: at most 3 fit, so heavy load is refused a 4th placement
    sim2 = Simulator(cluster, [dep], SimConfig(sample_s=1.0), gpu_table=table)
    r2 = sim2.run(gen.poisson(100.0, 60.0, seed=2), until=60.0)
    assert max(r2.series["instances"]) == 3
    assert r2.totals["placements_refused"] > 0
    assert max(r2.series["gpu_occupancy"]) == pytest.approx(0.9)
    assert r2.totals["resource_cost"]["gpu_s"] == pytest.approx(r2.totals["resource_cost"]["lifetime_s"] * 0.3)


@pytest.mark.skipif(default_table_path() is None, reason="the shared GPU table is not on this machine")
def test_a_function_of_two_gpu_models_takes_the_latency_of_both():
    """A regression: the per-pool memo of table lookups was keyed by batch size only, so a function grouping two
    models ran the first model's latency twice."""
    table = GpuTable.load()
    app = App("two_models", slo="p99:500ms")

    @app.stage(gpu=0.5, gpu_memory_mb=2000)
    def first(x):
        return x

    @app.stage(after=first, gpu=0.5, gpu_memory_mb=2000)
    def second(x):
        return x

    plan = Plan.coarse(app, default=FunctionConfig(max_instances=1))
    models = {"first": StageModel.gpu("resnet50"), "second": StageModel.gpu("mobilenet_v2")}
    share = GpuShare(sm=0.5, quota=1.0)
    dep = Deployment(app, plan, models, gpu_shares={"first+second": share})
    cluster = ClusterSpec.uniform(1, NodeSpec(cpus=16, memory_mb=1 << 16, gpus=1, gpu_memory_mb=16_000))
    r = Simulator(cluster, [dep], SimConfig(sample_s=1.0), gpu_table=table).run(np.array([1.0, 5.0]), until=10.0)
    both = table.latency_s("resnet50", 1, 0.5, 1.0) + table.latency_s("mobilenet_v2", 1, 0.5, 1.0)
    assert table.latency_s("resnet50", 1, 0.5, 1.0) != pytest.approx(table.latency_s("mobilenet_v2", 1, 0.5, 1.0))
    assert r.latency[1] == pytest.approx(both)


def test_many_deployments_share_one_cluster():
    app = one_stage()
    deps = [Deployment(app, Plan.coarse(app), {"work": StageModel.cpu(0.005)}, name=f"f{i}") for i in range(50)]
    times = gen.poisson(500.0, 60.0, seed=9)
    which = np.random.default_rng(0).integers(0, 50, times.size)
    sim = Simulator(ClusterSpec.uniform(10), deps, SimConfig())
    r = sim.run(times, which, until=70.0)
    s = r.summary()
    assert s["requests_finished"] == times.size and s["rejected"] == 0
    assert s["user_bill"]["invocations"] == times.size
    assert not math.isnan(s["slo_hit_rate"])
