"""Placement: which cores an instance is pinned to, and whether one more instance fits."""

import pytest

from shoal.policy.placement import fits, place_cpus


def test_an_instance_gets_the_least_loaded_cores():
    assert place_cpus([1.0, 0.0, 0.5], 1.0) == [1]
    assert place_cpus([1.0, 0.0, 0.5], 2.0) == [1, 2]


def test_a_fractional_share_takes_one_whole_core_and_ties_go_to_the_lowest_index():
    assert place_cpus([0.0, 0.0], 0.5) == [0]


def test_more_cores_than_the_machine_has_gets_all_of_them():
    assert place_cpus([0.0, 0.0], 4.0) == [0, 1]


def test_bad_requests_are_refused():
    with pytest.raises(ValueError):
        place_cpus([], 1.0)
    with pytest.raises(ValueError):
        place_cpus([0.0], 0.0)


def test_one_more_instance_fits_only_within_the_cores_times_overcommit():
    """Two cores, one already allocated: one more 1-vCPU instance fits, a second does not, unless overcommitted."""
    assert fits([1.0, 0.0], 1.0)
    assert not fits([1.0, 1.0], 1.0)
    assert fits([1.0, 1.0], 1.0, overcommit=1.5)
    assert fits([0.25, 0.25], 0.5)
