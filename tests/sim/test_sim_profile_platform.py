"""A real profile records the platform's CPU time per call and the CPU reference loop, and the simulator's
calibration reads both (no timing asserted: only that they were measured)."""

from __future__ import annotations

from typing import Any

import shoal
from shoal.predict import read_profile, write_profile
from shoal.runtime.profiler import ProfileOptions, profile_app
from shoal.runtime.profiler.machine import cpu_reference_ms
from shoal.sim import calibrate

LIGHT = ("numpy", "msgpack", "threadpoolctl")


def test_profile_records_platform_cpu_and_reference(tmp_path):
    app = shoal.App("plat", slo="p99:50ms")

    @app.stage(vcpu=0.5, memory_mb=64)
    def double(x: Any) -> Any:
        return x * 2

    opts = ProfileOptions(
        repeats=5,
        warmup=1,
        vcpus=(0.5,),
        batch_sizes=(1,),
        input_sizes=("medium",),
        plans=("fine",),
        hop_bytes=(),
        preload=LIGHT,
    )
    prof = profile_app(app, lambda size: 3, opts)
    path = write_profile(prof, tmp_path / "p.json")
    machine = read_profile(path).machine
    assert machine["platform_cpu_ms"] > 0
    assert machine["cpu_reference_ms"] > 0
    cal = calibrate(read_profile(path))
    assert cal.platform_cpu_s == machine["platform_cpu_ms"] / 1e3
    assert cal.cpu_reference_ms == machine["cpu_reference_ms"]
    assert cal.cpu_speed(cpu_reference_ms(3)) > 0
