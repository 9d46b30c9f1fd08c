"""What a function of a plan costs an instance, read from a profile: service time by input size and batch size,
the per-call overhead, and the cold start.

Rules (docs/predictors.md, "Service times"):

- A function measured as such (a row of the profile's ``functions`` with the same stages) is taken as measured.
  Otherwise it is composed from its stages' rows: the stages run one after another in one instance, so busy times
  add, and the call pays one overhead (``latency_ms - busy_ms`` of its entry stage: the round trip between the
  orchestrator and the instance with its data, what a function boundary costs).
- Each part is lognormal with the row's ``busy_ms`` median and coefficient of variation (the simulator's calibration
  does the same).
- Batch ``b``: a measured batch-``b`` row if there is one, linear in ``b`` between measured batch sizes, and beyond
  the largest; a stage that does not batch runs once per request (``b`` x its batch-1 time), as ``run_batch`` does.
- vCPU: rows are taken at the measured share nearest the function's, as measured: the runtime enforces a share by
  pinning to ``ceil(vcpu)`` cores with no CPU quota, so an instance of half a core runs as fast as one of a whole
  core while the cores are not all busy (docs/profiles.md). With ``cpu_quota=True`` a share below one core scales
  busy time by ``1 / share`` instead, as a CFS quota (or a loaded machine) would. A share above the largest measured
  is not assumed to be faster. Contention between instances on shared cores is not modelled (nor is it in the
  simulator).
- GPU: a stage with GPU rows in the profile, in a function with ``Resources.gpu > 0``, takes its time from those rows
  (an SM partition of ``gpu`` at full time quota, the simulator's default share), interpolated over the measured
  (batch, SM %, quota %) grid, with a CV of 0.05; its CPU row is not used.
- Cold start: the function row's ``cold_start_ms``, or the stages' spawn overhead (median of
  ``cold_start_ms - load_ms``) plus the sum of their ``load_ms``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shoal.app import Function
from shoal.predict.gpu_grid import ModelGrid
from shoal.predict.profile import Point, Profile, ProfileError

__all__ = ["Part", "FunctionService", "service_of", "GPU_CV"]

GPU_CV = 0.05
_FLOOR_S = 1e-6  # a row may round a tiny busy time to 0 ms; queueing needs a positive service time


@dataclass(frozen=True)
class Part:
    """One lognormal piece of a function's busy time at one (input size, batch): median (s) and CV."""

    median_s: float
    cv: float

    @property
    def mean_s(self) -> float:
        return self.median_s * math.sqrt(1.0 + self.cv * self.cv)

    @property
    def var_s2(self) -> float:
        return self.mean_s**2 * self.cv * self.cv

    @property
    def kappa3_s3(self) -> float:
        """Third cumulant (cumulants of independent parts add): E[X^k] = median^k (1 + cv^2)^(k^2 / 2)."""
        g = 1.0 + self.cv * self.cv
        m1, m2, m3 = (self.median_s**k * g ** (k * k / 2) for k in (1, 2, 3))
        return m3 - 3 * m1 * m2 + 2 * m1**3


@dataclass(frozen=True)
class _Curve:
    """Busy time against batch for one part at one input size: medians at measured batches, CV of batch 1."""

    batches: tuple[int, ...]
    medians_s: tuple[float, ...]
    cv: float
    per_request: bool  # the part runs once per request of a batch (it does not batch)
    on_gpu: bool = False  # a GPU time: not scaled by the vCPU share

    def at(self, batch: float, scale: float) -> Part:
        if self.per_request or len(self.batches) == 1:
            return Part(max(_FLOOR_S, self.medians_s[0]) * scale * (batch if self.per_request else 1.0), self.cv)
        xs, ys = np.asarray(self.batches, float), np.asarray(self.medians_s, float)
        if batch > xs[-1]:
            slope = max(0.0, (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]))
            v = ys[-1] + slope * (batch - xs[-1])
        else:
            v = float(np.interp(batch, xs, ys))
        return Part(max(_FLOOR_S, v) * scale, self.cv)


@dataclass(frozen=True)
class FunctionService:
    """A function's service model: per input size, its parts as functions of batch; overhead and cold start."""

    name: str
    curves: dict[str, tuple[_Curve, ...]]
    overhead_s: dict[str, float]
    cold_start_s: float
    scale: float  # the vCPU scaling (>= 1) applied to CPU parts

    def parts(self, size: str, batch: float) -> list[Part]:
        return [c.at(batch, 1.0 if c.on_gpu else self.scale) for c in self.curves[size]]

    def mean_s(self, size: str, batch: float) -> float:
        return sum(p.mean_s for p in self.parts(size, batch))

    def var_s2(self, size: str, batch: float) -> float:
        return sum(p.var_s2 for p in self.parts(size, batch))

    def moments(self, size: str, batch: float) -> tuple[float, float, float]:
        """Raw moments E[S], E[S^2], E[S^3] of the busy time of one batch."""
        parts = self.parts(size, batch)
        m = sum(p.mean_s for p in parts)
        v = sum(p.var_s2 for p in parts)
        k3 = sum(p.kappa3_s3 for p in parts)
        return m, v + m * m, k3 + 3 * m * v + m**3


def _vcpu_rows(rows: Sequence[Point], vcpu: float, cpu_quota: bool) -> tuple[list[Point], float]:
    shares = sorted({r.vcpu for r in rows})
    share = min(shares, key=lambda s: (abs(s - vcpu), s))
    # A row below one core was measured on a whole core (docs/profiles.md): its effective share is min(1, share).
    scale = min(1.0, share) / vcpu if cpu_quota and vcpu < min(1.0, share) else 1.0
    return [r for r in rows if r.vcpu == share], scale


def _curve(rows: Sequence[Point], per_request: bool) -> _Curve:
    rows = sorted(rows, key=lambda r: r.batch)
    b1 = rows[0]
    if per_request:
        rows = [b1]
    return _Curve(tuple(r.batch for r in rows), tuple(r.busy_ms.median / 1e3 for r in rows), b1.busy_ms.cv, per_request)


def _gpu_curve(profile: Profile, stage: str, gpu: float) -> _Curve | None:
    rows = [g for g in profile.gpu if g.stage == stage]
    if gpu <= 0 or not rows:
        return None
    grid = ModelGrid(stage, {(g.batch, g.sm_percent, g.quota_percent): g.latency_ms for g in rows})
    batches = tuple(int(b) for b in grid.batches)
    sm = np.full(len(batches), gpu * 100.0)
    meds = grid.at(np.asarray(batches, float), sm, np.full(len(batches), 100.0)) / 1e3
    return _Curve(batches, tuple(float(v) for v in meds), GPU_CV, False, on_gpu=True)


def service_of(
    profile: Profile, function: Function, sizes: Sequence[str], *, cpu_quota: bool = False
) -> FunctionService:
    """The service model of ``function`` at input ``sizes`` (see the module); :class:`ProfileError` names what the
    profile lacks. ``cpu_quota``: scale busy time by ``1 / share`` for shares below one core."""
    vcpu = function.resources.vcpu
    stages = function.stages
    measured = [p for p in profile.functions if p.stages == tuple(stages)] if len(stages) > 1 else []
    curves: dict[str, tuple[_Curve, ...]] = {}
    overhead: dict[str, float] = {}
    scale = 1.0
    declared_batch = {s.name: s.batch for s in profile.app.stages}
    gpu_curves = {s: _gpu_curve(profile, s, function.resources.gpu) for s in stages}
    if measured and not any(gpu_curves.values()):
        rows_all, scale = _vcpu_rows(measured, vcpu, cpu_quota)
        for size in sizes:
            rows = [r for r in rows_all if r.input_size == size]
            if not rows:
                raise ProfileError(f"the profile has no row of function {function.name!r} at input size {size!r}")
            # Measured at batch 1 only: the function does not batch, and runs once per request of a batch.
            curves[size] = (_curve(rows, per_request=len({r.batch for r in rows}) == 1),)
            b1 = min(rows, key=lambda r: r.batch)
            overhead[size] = max(0.0, b1.latency_ms.median - b1.busy_ms.median) / 1e3
        first = min(rows_all, key=lambda r: r.batch)
        return FunctionService(function.name, curves, overhead, first.cold_start_ms / 1e3, scale)
    spawn: list[float] = []
    loads: dict[str, float] = {}
    for size in sizes:
        parts = []
        for i, st in enumerate(stages):
            rows_all = [p for p in profile.stages if p.name == st]
            if not rows_all:
                raise ProfileError(f"the profile has no row of stage {st!r}; profile the application again")
            rows_all, sc = _vcpu_rows(rows_all, vcpu, cpu_quota)
            scale = max(scale, sc)
            rows = [r for r in rows_all if r.input_size == size]
            if not rows:
                raise ProfileError(f"the profile has no row of stage {st!r} at input size {size!r}")
            b1 = min(rows, key=lambda r: r.batch)
            gpu = gpu_curves[st]
            parts.append(gpu if gpu is not None else _curve(rows, per_request=not declared_batch.get(st, False)))
            if i == 0:
                overhead[size] = max(0.0, b1.latency_ms.median - b1.busy_ms.median) / 1e3
            spawn.append(b1.cold_start_ms - b1.load_ms)
            loads[st] = b1.load_ms
        curves[size] = tuple(parts)
    cold = (max(0.0, statistics.median(spawn)) + sum(loads.values())) / 1e3
    return FunctionService(function.name, curves, overhead, cold, scale)
