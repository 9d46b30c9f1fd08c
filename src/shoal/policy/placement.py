"""Where an instance runs: which CPU cores it is pinned to."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fits", "place_cpus"]


def place_cpus(load: Sequence[float], vcpu: float) -> list[int]:
    """Cores for an instance of ``vcpu`` cores, given the vCPU already placed on each core.

    An instance gets ``ceil(vcpu)`` distinct cores (at most all of them), the least loaded first, ties broken by
    core index so that placement is deterministic. A fractional share is pinned to a whole core, shared with other
    instances; the share itself is not enforced as a CPU quota (see docs/runtime.md).
    """
    if not load:
        raise ValueError("no cores to place on")
    if vcpu <= 0:
        raise ValueError(f"vcpu must be positive, got {vcpu}")
    n = min(len(load), max(1, math.ceil(vcpu - 1e-9)))
    return sorted(sorted(range(len(load)), key=lambda i: (load[i], i))[:n])


def fits(load: Sequence[float], vcpu: float, overcommit: float = 1.0) -> bool:
    """Whether one more instance of ``vcpu`` cores fits: allocated vCPU stays within cores x ``overcommit``.

    More busy instances than cores only make them share the cores, so CPU-bound functions get slower, not faster,
    while the resource cost grows (BENCHMARKS.md, dynamic batching: 8 one-vCPU instances on 2 cores).
    """
    return sum(load) + vcpu <= len(load) * overcommit + 1e-9
