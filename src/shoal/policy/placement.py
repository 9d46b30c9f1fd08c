"""Where an instance runs: which CPU cores it is pinned to."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["place_cpus"]


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
