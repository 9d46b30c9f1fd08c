"""The GPU model: measured points exactly, linear between them, documented extrapolation, FaST-GShare admission."""

import pytest

from shoal.sim.cluster import Cluster, ClusterSpec, NodeSpec
from shoal.sim.gpu import GpuDevice, GpuShare, GpuTable, GpuTableError, default_table_path


@pytest.fixture(scope="module")
def small():
    pts = {}
    for b in (1, 2, 4, 8):
        for s in (5, 10, 100):
            for q in (10, 100):
                pts[(b, s, q)] = b * 10.0 / (s / 100) / (q / 100) / 1e3  # seconds
    return GpuTable({"m": pts})


def test_measured_points_come_back_exactly(small):
    assert small.latency_s("m", 2, 0.10, 1.0) == pytest.approx(0.2, rel=0, abs=1e-12)
    assert small.latency_s("m", 8, 1.0, 0.1) == pytest.approx(0.8, rel=0, abs=1e-12)


def test_linear_between_points(small):
    lo, hi = small.latency_s("m", 1, 0.05, 1.0), small.latency_s("m", 1, 0.10, 1.0)
    assert small.latency_s("m", 1, 0.075, 1.0) == pytest.approx((lo + hi) / 2)
    b2, b4 = small.latency_s("m", 2, 1.0, 1.0), small.latency_s("m", 4, 1.0, 1.0)
    assert small.latency_s("m", 3, 1.0, 1.0) == pytest.approx((b2 + b4) / 2)
    q10, q100 = small.latency_s("m", 1, 1.0, 0.1), small.latency_s("m", 1, 1.0, 1.0)
    assert small.latency_s("m", 1, 1.0, 0.55) == pytest.approx((q10 + q100) / 2)


def test_extrapolation_outside_the_grid(small):
    b4, b8 = small.latency_s("m", 4, 1.0, 1.0), small.latency_s("m", 8, 1.0, 1.0)
    assert small.latency_s("m", 16, 1.0, 1.0) == pytest.approx(b8 + (b8 - b4) * 2)
    assert small.latency_s("m", 1, 0.01, 1.0) == small.latency_s("m", 1, 0.05, 1.0)  # clamped to 5 % SM
    with pytest.raises(GpuTableError):
        small.latency_s("m", 0, 1.0, 1.0)
    with pytest.raises(GpuTableError, match="not in the GPU table"):
        small.latency_s("nope", 1, 1.0, 1.0)


@pytest.mark.skipif(default_table_path() is None, reason="the shared GPU table is not on this machine")
def test_real_table_matches_its_csv_rows():
    table = GpuTable.load()
    assert len(table.models) >= 58
    assert table.latency_s("resnet50", 1, 1.0, 1.0) == pytest.approx(20.6475e-3)
    assert table.latency_s("alexnet", 1, 0.05, 0.1) == pytest.approx(24.595e-3)
    assert table.latency_s("resnet50", 1, 1.0, 0.1) == pytest.approx(254.506e-3)
    assert table.latency_s("efficientnet_b7", 8, 0.5, 0.5) > 0  # a model with holes in its grid answers too


def test_admission_sums_sm_times_quota_and_memory():
    d = GpuDevice(memory_mb=16_000)
    d.admit("a", GpuShare(sm=0.5, quota=1.0, memory_mb=4000))
    d.admit("b", GpuShare(sm=1.0, quota=0.3, memory_mb=4000))
    assert d.used == pytest.approx(0.8)
    assert not d.admits(GpuShare(sm=0.5, quota=0.5))  # 0.25 more would exceed 1
    assert d.admits(GpuShare(sm=0.2, quota=1.0))
    assert not d.admits(GpuShare(sm=0.1, quota=1.0, memory_mb=9000))  # memory caps
    with pytest.raises(GpuTableError, match="does not fit"):
        d.admit("c", GpuShare(sm=0.5, quota=0.5))
    d.release("a")
    assert d.admits(GpuShare(sm=0.5, quota=0.5))


def test_cluster_places_shares_best_fit_and_refuses_when_full():
    c = Cluster(ClusterSpec.uniform(1, NodeSpec(cpus=8, memory_mb=8192, gpus=2, gpu_memory_mb=16_000)))
    half = GpuShare(0.5, 1.0, 1000)
    for i in range(4):
        assert c.place(f"i{i}", 1.0, 512, half) == 0
    assert c.gpu_devices_busy() == 2 and c.gpu_occupancy() == pytest.approx(1.0)
    assert c.place("i4", 1.0, 512, half) is None
    c.release("i0")
    assert c.place("i5", 1.0, 512, GpuShare(0.25, 1.0)) == 0
    assert c.place("cpu-hog", 8.0, 512, None) is None  # only 4 cores left
