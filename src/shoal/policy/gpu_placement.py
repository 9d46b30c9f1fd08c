"""Which GPU an instance's share goes to, and when a scale-out must wait so that another function can start.

Admission is FaST-GShare's: a device admits a set of shares while the sum over them of SM partition x time quota
stays <= 1 and the sum of their memory caps fits the device's memory. Among the devices that admit a share, the
fullest one gets it (best fit), so that small shares pack onto few devices and whole devices stay free for large
shares; ties go to the lowest index, so placement is deterministic.

The guard against starvation comes from the simulator's first GPU result (BENCHMARKS.md section 8): with fine plans,
the backbone function's pool filled every GPU during its cold starts and the heads after it could not place a single
instance for 60-150 s, so every request failed although the cluster had ample capacity for a balanced plan. A request
of a plan needs every function on its path, so an extra instance for one function is worthless while another function
of the same plan has none. `leaves_room` lets a placer refuse a function's second and later instances when they would
take the room that the *first* instance of a waiting function needs; a function's first instance is never held back.

Pure functions over plain numbers: the simulator's cluster and the runtime's host both call them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["DeviceLoad", "ShareRequest", "admits", "leaves_room", "pick_device"]

# Slack for sums of float fractions: 0.1 * 10 must fit one device.
_EPS = 1e-9


@dataclass(frozen=True)
class ShareRequest:
    """What one instance asks of a GPU: ``fraction`` = SM partition x time quota, in (0, 1], and a memory cap."""

    fraction: float
    memory_mb: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1 + _EPS:
            raise ValueError(f"a GPU share's fraction (sm x quota) must be in (0, 1], got {self.fraction!r}")
        if self.memory_mb < 0:
            raise ValueError(f"a GPU share's memory cap must be >= 0 MiB, got {self.memory_mb!r}")


@dataclass(frozen=True)
class DeviceLoad:
    """What a device has admitted so far: sum of sm x quota, memory caps taken, and its memory."""

    used: float
    memory_used_mb: int
    memory_mb: int


def admits(device: DeviceLoad, share: ShareRequest) -> bool:
    """FaST-GShare admission: sm x quota summed over shares <= 1, memory caps summed <= the device's memory."""
    return device.used + share.fraction <= 1 + _EPS and device.memory_used_mb + share.memory_mb <= device.memory_mb


def pick_device(devices: Sequence[DeviceLoad], share: ShareRequest) -> int | None:
    """Index of the fullest device that admits ``share`` (lowest index on ties), or None if none does."""
    best: int | None = None
    for i, d in enumerate(devices):
        if admits(d, share) and (best is None or d.used > devices[best].used + _EPS):
            best = i
    return best


def leaves_room(devices: Sequence[DeviceLoad], waiting: Iterable[ShareRequest]) -> bool:
    """Whether every share in ``waiting`` can still be admitted on ``devices`` (their loads after the placement
    being weighed).

    ``waiting`` are the first instances of functions that need one (their plan is live and they have none). They
    are packed largest first, each best fit: first-fit-decreasing packing, so a True is a placement that exists, and
    a False may (rarely) be pessimistic. Only GPU room is weighed; the caller checks CPU and memory of the node.
    """
    loads = list(devices)
    for share in sorted(waiting, key=lambda s: (-s.fraction, -s.memory_mb)):
        i = pick_device(loads, share)
        if i is None:
            return False
        d = loads[i]
        loads[i] = DeviceLoad(d.used + share.fraction, d.memory_used_mb + share.memory_mb, d.memory_mb)
    return True
