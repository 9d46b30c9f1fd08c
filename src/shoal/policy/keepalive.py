"""The serverless keep-alive as a pure policy: which idle instances may be stopped now.

The autoscaler says how many instances a function wants; the keep-alive says the function's last instance lingers
warm for `keep_alive_s` before it may go, so a request arriving shortly after a lull finds a warm instance instead of
a cold start. Together they give "kept warm for a keep-alive period, scaled to zero when idle".

Instances above the autoscaler's count (the surplus a burst or a panic started) go sooner: once idle for
`surplus_idle_s`. Knative stops them at once (its scale-down has no keep-alive; the stable window already delays it);
holding them for the whole keep-alive instead costs for minutes, because a pool that hands work to its oldest free
instance still hands the surplus one a request whenever the older ones are all busy, so it rarely idles for a whole
keep-alive (docs/runtime.md, "Scaling down"). The pause, 1 s by default, keeps an instance that finished a request
a moment ago from being stopped between two requests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["IdleInstance", "first_expiry_tick", "idle_needed", "instances_to_retire"]

# Slack for float time arithmetic, so an instance idle for 9.999999999 s of a 10 s keep-alive still counts as expired.
_EPS = 1e-9


@dataclass(frozen=True)
class IdleInstance:
    """An instance with no request in flight, and when it last finished one (or became ready)."""

    instance_id: str
    idle_since: float


def instances_to_retire(
    idle: Sequence[IdleInstance],
    *,
    now: float,
    keep_alive_s: float,
    total: int,
    desired: int,
    min_instances: int,
    surplus_idle_s: float | None = None,
) -> list[str]:
    """Which idle instances to stop, longest-idle first, only while the function stays >= max(desired,
    min_instances). Returns instance ids.

    An instance whose stop leaves at least one instance needs to have been idle for `surplus_idle_s` (None: the
    keep-alive, as for every instance); the stop that would take the function to zero needs `keep_alive_s`, the
    serverless keep-alive. `total` counts every instance of the function (ready and starting, busy and idle), the
    same count the autoscaler's `desired` refers to. Longest-idle first keeps the most recently used instances, whose
    caches and memory are the warmest; ties break by id so the runtime and the simulator retire the same instances.
    """
    if not (math.isfinite(keep_alive_s) and keep_alive_s >= 0):
        raise ValueError(f"keep_alive_s must be a finite number >= 0, got {keep_alive_s!r}")
    surplus = keep_alive_s if surplus_idle_s is None else surplus_idle_s
    if not (math.isfinite(surplus) and surplus >= 0):
        raise ValueError(f"surplus_idle_s must be a finite number >= 0, got {surplus_idle_s!r}")
    if min_instances < 0:
        raise ValueError(f"min_instances must be >= 0, got {min_instances!r}")
    if total < len(idle):
        raise ValueError(f"total ({total}) must be >= the number of idle instances ({len(idle)})")
    floor = max(desired, min_instances)
    retired: list[str] = []
    for inst in sorted(idle, key=lambda i: (i.idle_since, i.instance_id)):
        left = total - len(retired) - 1  # instances after this stop
        if left < floor or now - inst.idle_since < idle_needed(left, keep_alive_s, surplus) - _EPS:
            break  # the rest have been idle no longer, and need at least as long
        retired.append(inst.instance_id)
    return retired


def idle_needed(left: int, keep_alive_s: float, surplus_idle_s: float) -> float:
    """How long an instance must have been idle to be stopped, when `left` instances remain after the stop: the
    surplus pause while one remains, the keep-alive for the stop that scales the function to zero."""
    return surplus_idle_s if left >= 1 else keep_alive_s


def first_expiry_tick(idle_since: float, keep_alive_s: float, after_tick: int, tick_s: float) -> int:
    """The first tick m >= after_tick (time m * tick_s) at which an instance idle since `idle_since` counts as
    expired for `instances_to_retire`. Decided by the very comparison `instances_to_retire` makes, so a caller that
    sleeps until this tick retires on exactly the tick it would have by calling on every tick."""
    if not (tick_s > 0 and math.isfinite(keep_alive_s) and keep_alive_s >= 0):
        raise ValueError(f"need tick_s > 0 and a finite keep_alive_s >= 0, got {tick_s!r}, {keep_alive_s!r}")
    x = (idle_since + keep_alive_s) / tick_s
    m = max(math.ceil(x) if math.isfinite(x) else after_tick, after_tick)
    while m > after_tick and (m - 1) * tick_s - idle_since >= keep_alive_s - _EPS:
        m -= 1
    while not m * tick_s - idle_since >= keep_alive_s - _EPS:
        m += 1
    return m
