"""Plan-aware GPU placement in the simulator: one function of a plan may not take the GPU room another function
of the same plan needs for its first instance (the runtime's policy, policy/gpu_placement.py)."""

from __future__ import annotations

import numpy as np
import pytest

import shoal
from shoal.app import FunctionConfig, Plan
from shoal.sim import ClusterSpec, Deployment, GpuShare, NodeSpec, SimConfig, Simulator, StageModel


def two_gpu_stages() -> tuple[shoal.App, Plan, Deployment]:
    app = shoal.App("pipe", slo="p99:1s")
    a = app.stage(lambda x: x, name="backbone", gpu=0.3)
    app.stage(lambda x: x, name="head", after=a, gpu=0.2)
    plan = Plan.fine(
        app, default=FunctionConfig(max_instances=10, keep_alive_s=30.0, surplus_idle_s=30.0, queue_limit=10_000)
    )
    # CPU stage models, so no GPU table is needed: the GPU shares still go through placement and admission
    models = {"backbone": StageModel.cpu(0.2), "head": StageModel.cpu(0.005)}
    shares = {"backbone": GpuShare(sm=0.3, quota=1.0), "head": GpuShare(sm=0.2, quota=1.0)}
    return app, plan, Deployment(app, plan, models, shares)


@pytest.mark.parametrize("aware", [True, False])
def test_a_burst_on_the_first_function_leaves_room_for_the_second(aware):
    """One GPU: the backbone (0.3) wants many instances during a burst; the head (0.2) gets its requests only once
    backbone calls finish. Without the guard the backbone takes 0.9 of the GPU while the head has no instance, and
    the head cannot start until the backbone's instances retire after 30 s idle (keep-alive and surplus pause);
    with it, the backbone stops at 0.6 and every request completes within seconds."""
    _, _, dep = two_gpu_stages()
    node = NodeSpec(cpus=16, memory_mb=64 * 1024, gpus=1, gpu_memory_mb=16 * 1024)
    config = SimConfig(stable_window_s=10, panic_window_s=2, plan_aware_placement=aware)
    sim = Simulator(ClusterSpec.uniform(1, node), [dep], config)
    times = np.linspace(0.0, 2.0, 60)  # 30 req/s for 2 s: backbone wants several 0.2-s instances at once
    result = sim.run(times, until=40.0)
    s = result.summary()
    lat = result.latencies()
    assert len(lat) == 60 and s["rejected"] == 0
    if aware:
        assert s["placements_held_for_other_functions"] > 0
        assert lat.max() < 5.0
    else:
        assert s["placements_held_for_other_functions"] == 0
        assert lat.min() > 25.0  # the head starved until the backbone's instances were retired
