"""CPU contention on a node (shoal.sim.cpu): processor sharing of the cores among running calls and the platform's
per-call work. Two jobs on one core take twice as long, a job alone is unchanged, and runs repeat per seed."""

import numpy as np
import pytest

from shoal.app import App, FunctionConfig, Plan
from shoal.sim import ClusterSpec, Deployment, NodeSpec, SimConfig, Simulator, StageModel
from shoal.sim.cluster import ClusterError
from shoal.sim.cpu import NodeCpu
from shoal.sim.kernel import Kernel


def finishes(node_kw, jobs, until=100.0):
    """Run calls (start time, work s, vcpu), each on an instance of its own pinned in that order, on one NodeCpu
    (vcpu None: a job of the platform's work per call instead); their finish times, in the order given."""
    kernel = Kernel()
    cpu = NodeCpu(kernel, **node_kw)
    done: dict[int, float] = {}

    def start(i, work):
        def record(j):
            done[j] = kernel.now

        if jobs[i][2] is None:
            cpu.platform(record, i)
        else:
            cpu.run(f"i{i}", work, record, i)

    for i, (t, work, vcpu) in enumerate(jobs):
        if vcpu is not None:
            cpu.assign(f"i{i}", vcpu)
        kernel.at(t, lambda i, w=work: start(i, w), i)
    kernel.run(until)
    return [done[i] for i in range(len(jobs))]


def test_a_job_alone_takes_its_time():
    assert finishes({"cores": 1.0}, [(0.0, 1.0, 1.0)]) == [pytest.approx(1.0)]


def test_two_jobs_on_one_core_take_twice_as_long():
    assert finishes({"cores": 1.0}, [(0.0, 1.0, 0.5), (0.0, 1.0, 0.5)]) == [pytest.approx(2.0)] * 2


def test_two_jobs_on_two_cores_do_not_slow_down():
    assert finishes({"cores": 2.0}, [(0.0, 1.0, 1.0), (0.0, 1.0, 1.0)]) == [pytest.approx(1.0)] * 2


def test_a_late_job_shares_from_when_it_comes():
    """A: 1 s from t=0; B: 1 s from t=0.5. Both run at half speed from 0.5, so A ends at 1.5 with B half done;
    B ends alone at 2.0."""
    assert finishes({"cores": 1.0}, [(0.0, 1.0, 1.0), (0.5, 1.0, 1.0)]) == [pytest.approx(1.5), pytest.approx(2.0)]


def test_pinned_instances_share_their_core_while_another_idles():
    """Three 0.5-vCPU instances on 2 cores are pinned to cores 0, 1, 0 (least allocated first, as the runtime
    places them): calls of the first and third at once share core 0, however idle core 1 is."""
    jobs = [(0.0, 1.0, 0.5), (5.0, 1.0, 0.5), (0.0, 1.0, 0.5)]
    assert finishes({"cores": 2.0}, jobs) == [pytest.approx(2.0), pytest.approx(6.0), pytest.approx(2.0)]


def test_background_work_slows_a_call_by_its_share():
    """A quarter of a core of other tenants' work on one core: a 1-s call gets 1 / 1.25 of it."""
    assert finishes({"cores": 1.0, "background": 0.25}, [(0.0, 1.0, 1.0)]) == [pytest.approx(1.25)]


def test_quota_lets_fractional_shares_fit_side_by_side():
    """Two 0.5-vCPU calls on one core: pinned (the runtime's rule) each may use the whole core, so they share it;
    under quotas each uses half, which is its profiled speed, so neither slows down."""
    jobs = [(0.0, 1.0, 0.5), (0.0, 1.0, 0.5)]
    assert finishes({"cores": 1.0, "quota": True}, jobs) == [pytest.approx(1.0)] * 2


def test_speed_scales_cpu_time():
    assert finishes({"cores": 1.0, "speed": 2.0}, [(0.0, 1.0, 1.0)]) == [pytest.approx(0.5)]


def test_platform_work_takes_its_share_of_the_cores():
    """A 1-s call beside 0.5 s of platform work on one core: both at half speed until the platform's part is done
    at t=1.0, then the call's last 0.5 s alone: 1.5 s."""
    got = finishes({"cores": 1.0, "platform_s": 0.5}, [(0.0, 1.0, 1.0), (0.0, 0.0, None)])
    assert got == [pytest.approx(1.5), pytest.approx(1.0)]


def test_the_platform_uses_one_core_at_most():
    """Two calls on cores 0 and 1 of 3 and two platform jobs of 1 s at once: the platform (one event loop) goes to
    the free core and its two jobs share it, so the calls do not slow down and the platform's take 2 s."""
    jobs = [(0.0, 1.0, 1.0), (0.0, 1.0, 1.0), (0.0, 0.0, None), (0.0, 0.0, None)]
    got = finishes({"cores": 3.0, "platform_s": 1.0}, jobs)
    assert got == [pytest.approx(1.0)] * 2 + [pytest.approx(2.0)] * 2


def one_stage():
    app = App("one", slo="p99:3s")

    @app.stage(vcpu=1.0)
    def work(x):
        return x

    return app


def run(node, times, cv=0.0, seed=0, min_instances=2, dispatch_s=0.0, cpu_fraction=1.0):
    app = one_stage()
    cfg = FunctionConfig(min_instances=min_instances, max_instances=min_instances, keep_alive_s=60.0)
    model = StageModel.cpu(1.0, cv=cv, cpu_fraction=cpu_fraction)
    dep = Deployment(app, Plan.coarse(app, default=cfg), {"work": model})
    config = SimConfig(cold_start_s=0.0, seed=seed, stable_window_s=6.0, panic_window_s=1.0, dispatch_s=dispatch_s)
    sim = Simulator(ClusterSpec((node,)), [dep], config)
    return sim.run(np.asarray(times, dtype=np.float64), until=max(times) + 30.0)


def latencies(res):
    return np.frombuffer(res.latency, dtype=np.float64)


def test_simulator_two_calls_on_one_core_take_twice_as_long():
    """Two warm 1-vCPU instances placed on a node of 2 vCPU that has one core: two calls at once each take 2 s with
    contention on, 1 s with it off (the default)."""
    times = [1.0, 1.0]
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True)
    assert latencies(run(on, times)).tolist() == [pytest.approx(2.0)] * 2
    assert latencies(run(NodeSpec(cpus=2.0), times)).tolist() == [pytest.approx(1.0)] * 2
    res = run(on, times)
    assert res.summary()["mean_breakdown_ms"]["exec"] == pytest.approx(2000.0)


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)])
def test_only_the_cpu_share_of_a_stage_is_slowed(fraction, expected):
    """Two 1-s calls at once on one core: a stage that sleeps (fraction 0) is not slowed; one half on the CPU shares
    the core for its 0.5 s of CPU (1 s for both), then sleeps its other 0.5 s; a CPU-bound one takes 2 s."""
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True)
    res = run(on, [1.0, 1.0], cpu_fraction=fraction)
    assert latencies(res).tolist() == [pytest.approx(expected)] * 2
    assert res.summary()["user_bill"]["billed_s"] == pytest.approx(2 * expected)


def test_simulator_call_alone_is_unchanged():
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True)
    assert latencies(run(on, [1.0, 5.0])).tolist() == [pytest.approx(1.0)] * 2
    # the platform's CPU work is the dispatch's first part: alone, a call still takes dispatch + its time
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True, platform_cpu_ms=100.0)
    assert latencies(run(on, [1.0, 5.0], dispatch_s=0.3)).tolist() == [pytest.approx(1.3)] * 2


def test_simulator_dispatch_waits_for_busy_cores():
    """Two calls at once on one core with 0.1 s of platform work each and dispatch 0.3 s: the platform's parts
    share the core (both done at 0.2 s), then the calls (both done at 2.2 s), then the other 0.2 s of dispatch."""
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True, platform_cpu_ms=100.0)
    res = run(on, [1.0, 1.0], dispatch_s=0.3)
    assert latencies(res).tolist() == [pytest.approx(2.4)] * 2
    parts = res.summary()["mean_breakdown_ms"]
    assert parts["exec"] == pytest.approx(2000.0)
    assert parts["hop"] == pytest.approx(400.0)


def test_simulator_bills_the_time_a_call_took():
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True)
    off = NodeSpec(cpus=2.0)
    assert run(on, [1.0, 1.0]).summary()["user_bill"]["billed_s"] == pytest.approx(4.0)
    assert run(off, [1.0, 1.0]).summary()["user_bill"]["billed_s"] == pytest.approx(2.0)


def test_simulator_is_deterministic_per_seed_under_contention():
    on = NodeSpec(cpus=2.0, shared_cores=1.0, cpu_contention=True, platform_cpu_ms=50.0)
    times = np.sort(np.random.default_rng(3).uniform(0.0, 20.0, 40)).tolist()
    a = latencies(run(on, times, cv=0.5, seed=4))
    b = latencies(run(on, times, cv=0.5, seed=4))
    c = latencies(run(on, times, cv=0.5, seed=5))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    # contention only ever makes calls slower than the same seed without it
    off = latencies(run(NodeSpec(cpus=2.0), times, cv=0.5, seed=4))
    assert (a >= off - 1e-9).all() and (a > off + 1e-6).any()


def test_contention_off_or_uncontended_changes_nothing():
    """A node whose cores are never oversubscribed gives the same latencies with the model on as off."""
    times = np.arange(1.0, 20.0, 2.5).tolist()  # one call at a time
    on = latencies(run(NodeSpec(cpus=2.0, shared_cores=2.0, cpu_contention=True), times, cv=0.5, seed=1))
    off = latencies(run(NodeSpec(cpus=2.0), times, cv=0.5, seed=1))
    assert on.tolist() == pytest.approx(off.tolist())


def test_cpu_keys_in_cluster_toml():
    spec = ClusterSpec.from_dict(
        {"nodes": [{"count": 2, "cpus": 4, "shared_cores": 2, "cpu_contention": True, "platform_cpu_ms": 0.4}]}
    )
    n = spec.nodes[0]
    got = (n.cpu_contention, n.shared_cores, n.platform_cpu_ms, n.cpu_speed, n.cpu_quota)
    assert got == (True, 2.0, 0.4, 1.0, False)
    assert not ClusterSpec.from_dict({"nodes": [{"cpus": 4}]}).nodes[0].cpu_contention
    with pytest.raises(ClusterError, match="cpu_speed > 0"):
        NodeSpec(cpu_speed=0.0)
