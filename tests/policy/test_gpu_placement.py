"""GPU placement: FaST-GShare admission, best fit, and the guard that keeps a plan's functions from starving."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.policy.gpu_placement import DeviceLoad, ShareRequest, admits, leaves_room, pick_device

EMPTY = DeviceLoad(0.0, 0, 16_000)


def test_admission_sums_sm_times_quota_and_memory():
    assert admits(DeviceLoad(0.5, 0, 16_000), ShareRequest(0.5))
    assert not admits(DeviceLoad(0.5, 0, 16_000), ShareRequest(0.51))
    assert not admits(DeviceLoad(0.1, 15_000, 16_000), ShareRequest(0.1, memory_mb=2_000))
    # ten shares of 0.1 fill a device exactly, in spite of float sums
    load = EMPTY
    for _ in range(10):
        assert admits(load, ShareRequest(0.1))
        load = DeviceLoad(load.used + 0.1, 0, load.memory_mb)
    assert not admits(load, ShareRequest(0.01))


def test_best_fit_takes_the_fullest_device_that_admits_and_the_lowest_index_on_ties():
    devices = [DeviceLoad(0.2, 0, 16_000), DeviceLoad(0.7, 0, 16_000), DeviceLoad(0.9, 0, 16_000)]
    assert pick_device(devices, ShareRequest(0.25)) == 1  # 0.9 + 0.25 does not fit
    assert pick_device(devices, ShareRequest(0.1)) == 2
    assert pick_device([EMPTY, EMPTY], ShareRequest(1.0)) == 0
    assert pick_device([DeviceLoad(0.5, 0, 16_000)], ShareRequest(0.6)) is None
    assert pick_device([], ShareRequest(0.1)) is None


def test_bad_shares_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="fraction"):
        ShareRequest(0.0)
    with pytest.raises(ValueError, match="fraction"):
        ShareRequest(1.5)
    with pytest.raises(ValueError, match="memory"):
        ShareRequest(0.5, memory_mb=-1)


def test_a_scale_out_that_would_leave_no_room_for_a_waiting_first_instance_is_refused():
    """Two GPUs; the backbone (0.3) already has five instances; the head (0.2) has none and waits for one."""
    after_sixth = [DeviceLoad(0.9, 0, 16_000), DeviceLoad(0.9, 0, 16_000)]
    assert not leaves_room(after_sixth, [ShareRequest(0.2)])
    after_sixth_alt = [DeviceLoad(0.9, 0, 16_000), DeviceLoad(0.6, 0, 16_000)]
    assert leaves_room(after_sixth_alt, [ShareRequest(0.2)])
    assert leaves_room(after_sixth, [])  # nothing waits: nothing to protect


def test_waiting_shares_are_packed_largest_first():
    # 0.5 + 0.5 and 0.3 + 0.3 + 0.4 fill two devices exactly only if the large ones go first
    shares = [ShareRequest(x) for x in (0.3, 0.5, 0.3, 0.4, 0.5)]
    assert leaves_room([EMPTY, DeviceLoad(0.0, 0, 16_000)], shares)
    assert not leaves_room([EMPTY], shares)


@given(
    used=st.lists(st.floats(0, 1), min_size=1, max_size=6),
    waiting=st.lists(st.floats(0.05, 1), max_size=5),
)
def test_a_true_answer_is_a_placement_that_exists(used, waiting):
    devices = [DeviceLoad(u, 0, 16_000) for u in used]
    shares = [ShareRequest(w) for w in waiting]
    if leaves_room(devices, shares):
        assert sum(shares_f := [s.fraction for s in shares]) <= sum(1 - u for u in used) + 1e-6
        assert all(f <= 1 - min(used) + 1e-6 for f in shares_f)
