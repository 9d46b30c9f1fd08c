"""The serverless keep-alive as a pure policy: which idle instances may be stopped now.

The autoscaler says how many instances a function wants; the keep-alive says an idle instance lingers warm for
`keep_alive_s` before it may go, so a request arriving shortly after a lull finds a warm instance instead of a cold
start. Together they give "kept warm for a keep-alive period, scaled to zero when idle".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["IdleInstance", "first_expiry_tick", "instances_to_retire"]

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
) -> list[str]:
    """Which idle instances to stop. An instance is retired only when it has been idle for at least keep_alive_s
    (the serverless keep-alive), and only while the function would stay >= max(desired, min_instances).
    Retire the longest-idle first. Returns instance ids.

    `total` counts every instance of the function (ready and starting, busy and idle), the same count the
    autoscaler's `desired` refers to. Longest-idle first keeps the most recently used instances, whose caches and
    memory are the warmest; ties break by id so the runtime and the simulator retire the same instances.
    """
    if not (math.isfinite(keep_alive_s) and keep_alive_s >= 0):
        raise ValueError(f"keep_alive_s must be a finite number >= 0, got {keep_alive_s!r}")
    if min_instances < 0:
        raise ValueError(f"min_instances must be >= 0, got {min_instances!r}")
    if total < len(idle):
        raise ValueError(f"total ({total}) must be >= the number of idle instances ({len(idle)})")
    room = total - max(desired, min_instances)
    if room <= 0:
        return []
    expired = [i for i in idle if now - i.idle_since >= keep_alive_s - _EPS]
    expired.sort(key=lambda i: (i.idle_since, i.instance_id))
    return [i.instance_id for i in expired[:room]]


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
