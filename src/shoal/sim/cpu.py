"""CPU contention on a node: processor sharing of its cores among the work running on it.

Off by default (``NodeSpec.cpu_contention``): a call then takes its stage time whatever else runs on the node, which
is right while no core is oversubscribed and keeps the simulator at its full speed. On (docs/simulator.md, *CPU
contention*):

- **Pinning.** An instance is pinned to ``ceil(vcpu)`` of the node's cores, the least allocated first, as the
  runtime's ``policy.placement.place_cpus`` pins it; the fractional share is not a quota, so a running call has one
  of its instance's cores to itself or shares it with the calls running there, while another core may idle. With
  ``NodeSpec.cpu_quota`` shares are quotas (as Kubernetes CPU limits): the cores are one pool and a call asks for
  its ``vcpu``.
- **Processor sharing.** While a core's demand (one per running call, the platform's work, the background) is at
  most its capacity, everything on it runs at full speed (``cpu_speed``); above, all of it slows down alike by
  ``capacity / demand``.
- **The platform's work per call** (``NodeSpec.platform_cpu_ms``: the parent process framing the call and its reply,
  running the orchestrator and the event loop) runs on the core with least to do (the parent is not pinned), on the
  call's critical path (the engine runs it first, as part of the dispatch); all of it together on a core asks for at
  most one core (one event loop).
- **Other work** (``NodeSpec.background_cores``) is a constant demand spread evenly over the cores.

Each kind of work on a core keeps a *virtual clock* advancing at its current rate, so a job's finish is a fixed
point on its clock: a change in the running set re-schedules that core's finishes only if the rate changed (nothing
while a core stays uncontended). Superseded completion events stay in the kernel's heap and are skipped when they
come up.

What it leaves out: CFS time slices and wake-up latency (a call waking onto a busy core waits up to a slice, which
sharing averages away), the kernel migrating unpinned work mid-call, caches and memory bandwidth shared between
cores, and GPU stages (a function with one is not in the model).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from shoal.sim.kernel import Kernel

__all__ = ["NodeCpu"]

_EPS = 1e-12


class _Clock:
    """One class of work (calls, or the platform's per-call work): its jobs and its virtual clock."""

    __slots__ = ("jobs", "rate", "v")

    def __init__(self) -> None:
        self.v = 0.0  # work done per job so far, in seconds at full speed
        self.rate = 1.0
        self.jobs: dict[int, list[Any]] = {}  # id -> [finish on this clock, demand, callback, arg, token]


class _Share:
    """Processor sharing of ``cores`` among calls (each asking for its demand), the platform's jobs (together at
    most one core) and a constant background demand."""

    __slots__ = ("_t", "background", "calls", "cores", "demand", "kernel", "owner", "platform")

    def __init__(self, owner: NodeCpu, cores: float, background: float) -> None:
        self.owner = owner
        self.kernel = owner.kernel
        self.cores = cores
        self.background = background
        self.calls = _Clock()
        self.platform = _Clock()
        self.demand = 0.0  # of the calls
        self._t = 0.0  # when the clocks were last advanced

    def load(self) -> float:
        return self.demand + min(1, len(self.platform.jobs))

    def add(self, platform: bool, work: float, demand: float, done: Callable[[Any], None] | None, arg: Any) -> None:
        self._advance()
        clock = self.platform if platform else self.calls
        self.owner.ids += 1
        clock.jobs[self.owner.ids] = [clock.v + work, demand, done, arg, 0]
        self.demand += demand
        self._reschedule()

    def _advance(self) -> None:
        now = self.kernel.now
        dt = now - self._t
        if dt > 0:
            self.calls.v += dt * self.calls.rate
            self.platform.v += dt * self.platform.rate
        self._t = now

    def _reschedule(self) -> None:
        """Set the clocks' rates for the work running now; re-schedule the finishes of a clock whose rate changed
        (and of jobs not scheduled yet)."""
        n_p = len(self.platform.jobs)
        total = self.demand + min(1, n_p) + self.background
        share = self.owner.speed * (1.0 if total <= self.cores + _EPS else self.cores / total)
        for clock, rate in ((self.calls, share), (self.platform, share / n_p if n_p > 1 else share)):
            changed = rate != clock.rate
            clock.rate = rate
            for jid, job in clock.jobs.items():
                if changed or job[4] == 0:
                    job[4] += 1
                    t = self.kernel.now + max(0.0, job[0] - clock.v) / rate
                    self.kernel.at(t, self._finish, (clock, jid, job[4]))

    def _finish(self, arg: tuple[_Clock, int, int]) -> None:
        clock, jid, token = arg
        job = clock.jobs.get(jid)
        if job is None or job[4] != token:
            return  # superseded by a re-schedule
        self._advance()
        del clock.jobs[jid]
        self.demand -= job[1]
        if not self.calls.jobs:
            self.demand = 0.0  # no drift from adding and removing floats
        self._reschedule()
        if job[2] is not None:
            job[2](job[3])


class NodeCpu:
    """The CPU model of one node (see the module): its cores, which instance is pinned to which, and the running
    work on each."""

    def __init__(
        self,
        kernel: Kernel,
        cores: float,
        *,
        speed: float = 1.0,
        platform_s: float = 0.0,
        quota: bool = False,
        background: float = 0.0,
    ) -> None:
        if not cores > 0 or not speed > 0 or platform_s < 0 or background < 0:
            raise ValueError(
                f"need cores > 0, speed > 0, platform work >= 0 and background >= 0, got {cores}, {speed}, "
                f"{platform_s}, {background}"
            )
        self.kernel = kernel
        self.speed = speed
        self.platform_s = platform_s
        self.quota = quota
        self.ids = 0
        if quota:  # shares are quotas: the node's cores are one pool, a call asks for its share
            self.shares = [_Share(self, cores, background)]
        else:  # pinned: one share per core, a call runs on one of its instance's cores
            n = max(1, round(cores))
            self.shares = [_Share(self, 1.0, background / n) for _ in range(n)]
        self.allocated = [0.0] * len(self.shares)  # vCPU pinned to each core
        self.pins: dict[str, tuple[list[int], float]] = {}  # instance -> (its cores, its vCPU)

    def assign(self, key: str, vcpu: float) -> None:
        """Pin an instance: ``ceil(vcpu)`` cores, the least allocated first (``policy.placement.place_cpus``)."""
        n = len(self.shares)
        if self.quota:
            cores = [0]
        else:
            k = min(n, max(1, math.ceil(vcpu - 1e-9)))
            cores = sorted(sorted(range(n), key=lambda i: (self.allocated[i], i))[:k])
        for c in cores:
            self.allocated[c] += vcpu / len(cores)
        self.pins[key] = (cores, vcpu)

    def release(self, key: str) -> None:
        cores, vcpu = self.pins.pop(key)
        for c in cores:
            self.allocated[c] = max(0.0, self.allocated[c] - vcpu / len(cores))

    def run(self, key: str, work_s: float, done: Callable[[Any], None], arg: Any) -> None:
        """Start a call of instance ``key`` needing ``work_s`` seconds (at full speed, alone) now; ``done(arg)`` runs
        when it has had them."""
        cores, vcpu = self.pins[key]
        shares = self.shares
        if self.quota:
            shares[0].add(False, work_s, vcpu, done, arg)
        else:
            c = min(cores, key=lambda i: shares[i].load()) if len(cores) > 1 else cores[0]
            shares[c].add(False, work_s, 1.0, done, arg)

    def platform(self, done: Callable[[Any], None], arg: Any) -> None:
        """Start the platform's work for one call (``platform_s``) now; ``done(arg)`` when it has had it. The parent
        is not pinned: it runs on the core with least to do (then the least allocated)."""
        shares = self.shares
        c = 0
        if len(shares) > 1:
            c = min(range(len(shares)), key=lambda i: (shares[i].load(), self.allocated[i], i))
        shares[c].add(True, self.platform_s, 0.0, done, arg)
