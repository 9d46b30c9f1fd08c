"""Stage times, cold start, dispatch and hops for the simulator from a `shoal profile` file."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

import shoal
from shoal.app import Plan
from shoal.cli import cli
from shoal.predict import (
    AppInfo,
    HopPoint,
    Point,
    Profile,
    ProfileError,
    Settings,
    Spread,
    StageInfo,
    read_profile,
    write_profile,
)
from shoal.sim import ClusterSpec, Deployment, NodeSpec, SimConfig, Simulator, calibrate, read_calibration


def _spread(median: float, cv: float) -> Spread:
    return Spread(median, median * 0.9, median * 1.1, cv, 20)


def _row(stage: str, vcpu: float, busy: float, latency: float, size: str = "medium", cv: float = 0.2) -> Point:
    return Point(
        "stage", stage, "fine", (stage,), vcpu, 1, "rows", size, 100, _spread(latency, cv), _spread(busy, cv),
        4096, 50.0, 80.0, 60.0,
    )  # fmt: skip


def _hop(nbytes: int, per_hop_ms: float) -> HopPoint:
    return HopPoint(nbytes, per_hop_ms, 1, _spread(per_hop_ms + 0.3, 0.1), _spread(0.3, 0.1))


def _profile() -> Profile:
    stages = (StageInfo("a", (), False, 1.0, 256, 0.0), StageInfo("b", ("a",), False, 0.5, 256, 0.0))
    rows = (
        _row("a", 1.0, busy=10.0, latency=10.4),
        _row("a", 2.0, busy=6.0, latency=6.4),
        _row("a", 1.0, busy=99.0, latency=99.4, size="large"),
        _row("b", 1.0, busy=20.0, latency=20.6, cv=0.5),
        _row("b", 1.0, busy=40.0, latency=40.6, size="large"),
    )
    settings = Settings(10, 2, (1.0, 2.0), (1,), ("medium", "large"), ("fine",), (1024, 1 << 20), "inputs()")
    return Profile(
        "2026-11-23T00:00:00Z",
        {"cpu": "test", "cores": 2},
        AppInfo("t", "p99:100ms", "t.py", stages),
        settings,
        stages=rows,
        hops=(_hop(1024, 0.6), _hop(1 << 20, 1.6)),
    )


def test_stage_times_cold_start_dispatch_and_hops_come_from_the_profile():
    cal = calibrate(_profile())
    a, b = cal.stages["a"], cal.stages["b"]
    # the declared vCPU's row (a: 1.0, not 2.0; b: 0.5 -> nearest measured, 1.0), at the medium input size
    assert a.mean_s == pytest.approx(0.010 * math.sqrt(1 + 0.2**2))  # lognormal: mean = median x sqrt(1 + cv^2)
    assert (a.cv, b.cv) == (0.2, 0.5)
    assert b.mean_s == pytest.approx(0.020 * math.sqrt(1.25))
    assert a.load_s == pytest.approx(0.050) and a.output_bytes == 4096
    assert cal.cold_start_s == pytest.approx(0.030)  # cold_start_ms - load_ms: the spawn overhead
    assert cal.dispatch_s == pytest.approx(0.0005)  # latency - busy, median over the stages (0.4 and 0.6 ms)
    assert cal.network.local_latency_s == pytest.approx(0.0006 - 0.0005)  # smallest hop less the dispatch
    assert cal.network.hop_s(True, 1 << 20) == pytest.approx(0.0016 - 0.0005, rel=1e-3)
    assert calibrate(_profile(), input_size="large").stages["a"].mean_s > 0.09


def test_lognormal_stage_times_have_the_profiles_median_and_cv():
    app = shoal.App("one", slo="p99:1s")

    @app.stage()
    def only(x):
        return x

    row = _row("only", 1.0, busy=10.0, latency=10.5, cv=0.4)
    prof = Profile(
        "2026-11-23T00:00:00Z",
        {"cpu": "test", "cores": 2},
        AppInfo("one", "p99:1s", "t.py", (StageInfo("only", (), False, 1.0, 256, 0.0),)),
        Settings(10, 2, (1.0,), (1,), ("medium",), ("fine",), (), "inputs()"),
        stages=(row,),
    )
    cal = calibrate(prof)
    sim = Simulator(
        ClusterSpec.uniform(1, NodeSpec(cpus=4)),
        [Deployment(app, Plan.coarse(app), cal.stages)],
        SimConfig(cold_start_s=cal.cold_start_s, dispatch_s=cal.dispatch_s, seed=3),
    )
    res = sim.run(np.arange(4000) * 0.1)  # one at a time, warm after the first
    lat = res.latencies()[1:] - cal.dispatch_s
    assert np.median(lat) == pytest.approx(0.010, rel=0.05)
    assert lat.std() / lat.mean() == pytest.approx(0.4, rel=0.1)
    assert res.summary()["mean_breakdown_ms"]["hop"] == pytest.approx(0.5, rel=1e-6)  # the dispatch round trip


def test_read_calibration_and_the_cli_option(tmp_path):
    path = write_profile(_profile(), tmp_path / "p.json")
    assert read_calibration(path).stages["b"].cv == 0.5
    with pytest.raises(ProfileError, match="no batch-1 row of stage 'a'"):
        read_calibration(path, input_size="small")
    app = tmp_path / "t.py"
    app.write_text(
        "import shoal\napp = shoal.App('t', slo='p99:100ms')\n\n@app.stage()\ndef a(x):\n    return x\n\n"
        "@app.stage(after=a, vcpu=0.5)\ndef b(x):\n    return x\n"
    )
    r = CliRunner().invoke(
        cli, ["sim", str(app), "--trace", "poisson:5:20", "--profile", str(path), "--no-plots", "--output", "json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["summary"]["latency_ms"]["p50"] > 30  # 10 + 20 ms of stage time, not the default 2 x 10 ms
    assert doc["meta"]["profile"] == str(path)


def _with_machine(**machine) -> Profile:
    p = _profile()
    return Profile(p.created, {**p.machine, **machine}, p.app, p.settings, stages=p.stages, hops=p.hops)


def test_platform_cpu_and_cpu_reference_are_optional(tmp_path):
    """Profiles written before the two fields existed still load and calibrate: no platform work, no speed."""
    path = write_profile(_profile(), tmp_path / "old.json")
    doc = json.loads(path.read_text())
    assert "platform_cpu_ms" not in doc["machine"] and "cpu_reference_ms" not in doc["machine"]
    cal = read_calibration(path)
    assert cal.platform_cpu_s == 0.0 and cal.cpu_reference_ms is None
    assert cal.cpu_speed(1.5) == 1.0


def test_platform_cpu_and_cpu_speed_come_from_the_profile(tmp_path):
    path = write_profile(_with_machine(platform_cpu_ms=0.25, cpu_reference_ms=1.2), tmp_path / "new.json")
    cal = read_calibration(path)
    assert cal.platform_cpu_s == pytest.approx(0.25e-3)
    assert cal.cpu_speed(2.4) == pytest.approx(0.5)  # the loop takes twice as long here: cores half as fast
    assert cal.cpu_speed(None) == 1.0
    node = NodeSpec(cpu_contention=True, platform_cpu_ms=cal.platform_cpu_s * 1e3, cpu_speed=cal.cpu_speed(2.4))
    assert node.cpu_speed == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("machine", "match"),
    [({"platform_cpu_ms": -1.0}, "platform_cpu_ms must be a number >= 0"), ({"cpu_reference_ms": 0}, "> 0")],
)
def test_bad_platform_cpu_or_reference_is_refused(machine, match):
    with pytest.raises(ProfileError, match=match):
        calibrate(_with_machine(**machine))


def test_cpu_fraction_comes_from_the_rows_cpu_time(tmp_path):
    """A row with cpu_ms: the stage's share on a core is cpu_ms over its mean busy time (capped at 1); rows
    without it (older profiles) are CPU-bound. cpu_ms survives the file; a file without it still loads."""
    p = _profile()
    a_mean_ms = 10.0 * math.sqrt(1 + 0.2**2)
    rows = tuple(replace(r, cpu_ms=a_mean_ms / 4) if r.name == "a" else r for r in p.stages)
    prof = Profile(p.created, p.machine, p.app, p.settings, stages=rows, hops=p.hops)
    path = write_profile(prof, tmp_path / "cpu.json")
    cal = read_calibration(path)
    assert cal.stages["a"].cpu_fraction == pytest.approx(0.25)
    assert cal.stages["b"].cpu_fraction == 1.0
    old = write_profile(_profile(), tmp_path / "old.json")
    assert "cpu_ms" not in old.read_text()
    assert all(r.cpu_ms is None for r in read_profile(old).stages)
