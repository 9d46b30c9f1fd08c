"""Stage times, cold starts and hops for the simulator from a ``shoal profile`` file (schema ``shoal.profile/1``).

A profile measures each stage alone on the embedded runtime (docs/profiles.md). The simulator's calibration reads:

- **stage time**: the row's ``busy_ms`` (the instance's time on the call: what the runtime bills), as a lognormal
  with the row's median and coefficient of variation (``StageModel`` takes the mean: median x sqrt(1 + cv^2)), and
  the share of it on a core, ``cpu_ms`` / that mean (``StageModel.cpu_fraction``; 1 in profiles without ``cpu_ms``);
- **dispatch**: ``latency_ms - busy_ms`` of the same rows (the round trip between the parent and an instance, which
  every function call pays and nobody is billed for), the median over stages, as ``SimConfig.dispatch_s``;
- **cold start**: ``load_ms`` per stage (``StageModel.load_s``) plus the measured spawn overhead
  ``cold_start_ms - load_ms`` (fork, shares, connection), the median over stages, as ``SimConfig.cold_start_s``;
- **platform CPU work per call**: the parent's CPU time per call while the stage rows were measured
  (``machine.platform_cpu_ms``; 0 in profiles that lack it), for ``NodeSpec.platform_cpu_ms`` when the node models
  CPU contention (``shoal.sim.cpu``);
- **CPU speed reference**: ``machine.cpu_reference_ms``, a fixed Python loop's CPU time when the profile was taken
  (None in profiles that lack it); :meth:`Calibration.cpu_speed` turns a measurement of the same loop on the
  simulated machine into ``NodeSpec.cpu_speed``;
- **data hops**: the ``per_hop_ms`` rows (fine minus coarse, one extra function boundary) less the dispatch already
  counted, as the node-local latency, and the slope between the smallest and the largest hop as the local
  bandwidth; a stage's ``output_bytes`` is what its output puts on the data plane.

Rows are taken at batch 1, at the measured vCPU share nearest the stage's declared one, and at one input size.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field, replace

from shoal.predict import Point, Profile, ProfileError, read_profile
from shoal.sim.cluster import Network
from shoal.sim.model import StageModel

__all__ = ["Calibration", "calibrate", "read_calibration", "stage_model_of"]


@dataclass(frozen=True)
class Calibration:
    """What a profile says about an application, in the simulator's terms."""

    stages: dict[str, StageModel] = field(default_factory=dict)
    #: Platform part of a cold start (``SimConfig.cold_start_s``): fork, shares, connection; stage loads come on top.
    cold_start_s: float = 0.0
    #: Round trip of one function call between the parent and an instance (``SimConfig.dispatch_s``).
    dispatch_s: float = 0.0
    network: Network = field(default_factory=Network)
    #: The platform's (the parent process's) CPU time per function call, for ``NodeSpec.platform_cpu_ms``.
    platform_cpu_s: float = 0.0
    #: ``shoal.runtime.profiler.cpu_reference_ms`` when the profile was taken; None if the profile lacks it.
    cpu_reference_ms: float | None = None

    def cpu_speed(self, reference_ms: float | None) -> float:
        """``NodeSpec.cpu_speed`` for a machine on which the reference loop takes ``reference_ms`` (1.0 when either
        measurement is missing): cores that run the loop in half the time run the profiled stages twice as fast."""
        if not reference_ms or not self.cpu_reference_ms:
            return 1.0
        return self.cpu_reference_ms / reference_ms


def stage_model_of(row: Point) -> StageModel:
    """A lognormal CPU stage model with the row's busy-time median and CV, its output bytes and model load, and the
    share of its time on a core (the row's CPU time over its mean busy time; 1 when the profile does not say)."""
    busy = row.busy_ms
    mean_ms = max(busy.median, 1e-3) * math.sqrt(1.0 + busy.cv * busy.cv)
    frac = 1.0 if row.cpu_ms is None else min(1.0, row.cpu_ms / mean_ms)
    return StageModel.cpu(
        mean_ms / 1e3,
        cv=busy.cv,
        output_bytes=row.output_bytes,
        load_s=max(0.0, row.load_ms) / 1e3,
        cpu_fraction=frac,
    )


def _row(profile: Profile, stage: str, vcpu: float, input_size: str | None) -> Point:
    rows = [p for p in profile.stages if p.name == stage and p.batch == 1]
    if input_size is not None:
        rows = [p for p in rows if p.input_size == input_size]
    if not rows:
        size = f" at input size {input_size!r}" if input_size else ""
        raise ProfileError(f"the profile has no batch-1 row of stage {stage!r}{size}")
    sizes = list(dict.fromkeys(p.input_size for p in rows))
    size = input_size or ("medium" if "medium" in sizes else sizes[0])
    rows = [p for p in rows if p.input_size == size]
    return min(rows, key=lambda p: (abs(p.vcpu - vcpu), p.vcpu))


def calibrate(profile: Profile, *, input_size: str | None = None, network: Network | None = None) -> Calibration:
    """The simulator's stage models, cold start, dispatch and local hop model from a profile (see the module)."""
    declared = {s.name: s.vcpu for s in profile.app.stages}
    rows = {name: _row(profile, name, vcpu, input_size) for name, vcpu in declared.items()}
    if not rows:
        raise ProfileError("the profile names no stages")
    stages = {name: stage_model_of(r) for name, r in rows.items()}
    dispatch_s = max(0.0, statistics.median(r.latency_ms.median - r.busy_ms.median for r in rows.values())) / 1e3
    spawn_s = max(0.0, statistics.median(r.cold_start_ms - r.load_ms for r in rows.values())) / 1e3
    net = network or Network()
    hops = sorted(profile.hops, key=lambda h: h.bytes)
    if hops:
        first, last = hops[0], hops[-1]
        latency_s = max(0.0, first.per_hop_ms / 1e3 - dispatch_s)
        slope = (last.per_hop_ms - first.per_hop_ms) / 1e3 / max(1, last.bytes - first.bytes)
        bandwidth = 1.0 / slope if slope > 0 else net.local_bandwidth_bytes_s
        net = replace(net, local_latency_s=latency_s, local_bandwidth_bytes_s=bandwidth)
    platform_ms = profile.machine.get("platform_cpu_ms", 0.0)
    reference = profile.machine.get("cpu_reference_ms")
    if not isinstance(platform_ms, int | float) or platform_ms < 0:
        raise ProfileError(f"machine.platform_cpu_ms must be a number >= 0, got {platform_ms!r}")
    if reference is not None and (not isinstance(reference, int | float) or not reference > 0):
        raise ProfileError(f"machine.cpu_reference_ms must be a number > 0, got {reference!r}")
    return Calibration(stages, spawn_s, dispatch_s, net, platform_ms / 1e3, reference)


def read_calibration(path: str | os.PathLike[str], *, input_size: str | None = None) -> Calibration:
    """:func:`calibrate` on a profile file."""
    return calibrate(read_profile(path), input_size=input_size)
