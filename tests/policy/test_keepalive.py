"""The keep-alive policy: which idle instances may be stopped, given the time and the autoscaler's wish."""

from __future__ import annotations

import pytest

from shoal.policy import IdleInstance, instances_to_retire

IDLE = [IdleInstance("c", idle_since=8.0), IdleInstance("a", idle_since=0.0), IdleInstance("b", idle_since=5.0)]


def test_only_instances_idle_for_the_keep_alive_retire_longest_idle_first() -> None:
    """At t=10 with a 5 s keep-alive, a (idle 10 s) and b (idle exactly 5 s) may go, a first; c (2 s) stays warm."""
    assert instances_to_retire(IDLE, now=10.0, keep_alive_s=5.0, total=3, desired=0, min_instances=0) == ["a", "b"]


def test_nothing_retires_before_the_keep_alive() -> None:
    """The autoscaler wants zero, but every instance finished a request less than 30 s ago: all stay warm."""
    assert instances_to_retire(IDLE, now=10.0, keep_alive_s=30.0, total=3, desired=0, min_instances=0) == []


@pytest.mark.parametrize(
    ("desired", "min_instances", "expected"), [(2, 0, ["a"]), (0, 2, ["a"]), (3, 0, []), (1, 2, ["a"])]
)
def test_the_function_stays_at_max_of_desired_and_min(desired: int, min_instances: int, expected: list[str]) -> None:
    """a and b have outlived the keep-alive, but only as many go as keep the function at max(desired, min)."""
    assert (
        instances_to_retire(IDLE, now=10.0, keep_alive_s=5.0, total=3, desired=desired, min_instances=min_instances)
        == expected
    )


def test_busy_instances_count_toward_the_total() -> None:
    """Four busy instances and one idle one: with desired 4 the idle one may go, with desired 5 it may not."""
    idle = [IdleInstance("x", idle_since=0.0)]
    assert instances_to_retire(idle, now=100.0, keep_alive_s=10.0, total=5, desired=4, min_instances=0) == ["x"]
    assert instances_to_retire(idle, now=100.0, keep_alive_s=10.0, total=5, desired=5, min_instances=0) == []


def test_zero_keep_alive_retires_every_idle_instance_down_to_desired() -> None:
    """With no keep-alive the autoscaler alone decides: c, idle for only 2 s, goes too when desired is 0."""
    assert instances_to_retire(IDLE, now=10.0, keep_alive_s=0.0, total=3, desired=0, min_instances=0) == [
        "a",
        "b",
        "c",
    ]


def test_ties_break_by_instance_id() -> None:
    """Equal idle times retire in id order, so the runtime and the simulator stop the same instances."""
    idle = [IdleInstance("z", 1.0), IdleInstance("m", 1.0), IdleInstance("a", 1.0)]
    assert instances_to_retire(idle, now=50.0, keep_alive_s=10.0, total=3, desired=1, min_instances=0) == ["a", "m"]


def test_float_noise_does_not_delay_retirement() -> None:
    """32.3 - 2.3 is 29.999999999999996 in floats; an instance idle since 2.3 has done its 30 s at 32.3."""
    idle = [IdleInstance("a", 2.3)]
    assert instances_to_retire(idle, now=32.3, keep_alive_s=30.0, total=1, desired=0, min_instances=0) == ["a"]


def test_surplus_instances_go_after_the_pause_the_last_one_after_the_keep_alive() -> None:
    """Desired 0, keep-alive 30 s, surplus pause 1 s: a and b (idle 10 s and 5 s) go at once, longest-idle first;
    c, idle 2 s, would take the function to zero, so it waits out the keep-alive."""
    retire = instances_to_retire(IDLE, now=10.0, keep_alive_s=30.0, surplus_idle_s=1.0, total=3, desired=0,
                                 min_instances=0)  # fmt: skip
    assert retire == ["a", "b"]
    assert instances_to_retire([IDLE[0]], now=37.0, keep_alive_s=30.0, surplus_idle_s=1.0, total=1, desired=0,
                               min_instances=0) == []  # fmt: skip
    assert instances_to_retire([IDLE[0]], now=38.0, keep_alive_s=30.0, surplus_idle_s=1.0, total=1, desired=0,
                               min_instances=0) == ["c"]  # fmt: skip


def test_surplus_pause_keeps_an_instance_that_just_finished() -> None:
    """Five instances, the autoscaler wants two: only the idle ones past the 3 s pause go (a, b); c finished 2 s
    ago and stays, though the function is above its desired count."""
    assert instances_to_retire(IDLE, now=10.0, keep_alive_s=60.0, surplus_idle_s=3.0, total=5, desired=2,
                               min_instances=0) == ["a", "b"]  # fmt: skip


def test_busy_instances_keep_the_surplus_rule() -> None:
    """One busy instance remains, so every idle one is surplus even with desired 0: all three go after the pause."""
    assert instances_to_retire(IDLE, now=10.0, keep_alive_s=60.0, surplus_idle_s=1.0, total=4, desired=0,
                               min_instances=0) == ["a", "b", "c"]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keep_alive_s": -1.0}, "keep_alive_s"),
        ({"keep_alive_s": float("inf")}, "keep_alive_s"),
        ({"min_instances": -1}, "min_instances"),
        ({"surplus_idle_s": -0.5}, "surplus_idle_s"),
        ({"surplus_idle_s": float("nan")}, "surplus_idle_s"),
        ({"total": 2}, "total"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"now": 10.0, "keep_alive_s": 5.0, "total": 3, "desired": 0, "min_instances": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        instances_to_retire(IDLE, **args)  # type: ignore[arg-type]
