"""GPU behaviour from measurement: latency of a model at (batch, SM share, time quota), and FaST-GShare admission.

The table (``../shared/gpu-profiles/rapp_v100_latency.csv``) holds latency on a V100 at batch 1, 2, 4, 8, SM
partition 5..100 % (step 5, NVIDIA MPS) and time quota 10..100 % (step 10, token time-slicing). Between measured
points latency is trilinear in (batch, SM %, quota %); a measured point is returned exactly.

Outside the grid (documented in docs/simulator.md):
- batch above 8 is extrapolated linearly from batches 4 and 8 (GPU latency grows about linearly once the device is
  saturated); batch below 1 is refused;
- SM below 5 % or quota below 10 % take the value at 5 % / 10 % (optimistic: such thin shares were not measured);
  above 100 % is refused.
A model with holes in its grid (two models of the table lack some points) has each hole filled with the nearest
measured point of the same batch (in grid steps).

Co-location (FaST-GShare's model): a share is (sm, quota) with both in (0, 1] and a memory cap. Spatial shares (MPS
SM partitions) run at once; temporal shares take turns in time slices, each getting ``quota`` of every window. A
device admits a set of shares while ``sum(sm * quota) <= 1`` and ``sum(memory) <= device memory``. An instance's
latency is the table's value at its own (sm, quota): it does not depend on what else runs on the device. That
captures the slowdown of a smaller SM partition and of waiting for one's time slice; it does *not* capture
contention for memory bandwidth, L2 cache or PCIe between co-located partitions, nor a work-conserving scheduler
that lends idle quota to busy tenants.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GpuDevice", "GpuShare", "GpuTable", "GpuTableError", "default_table_path", "sm_quota_for"]

_EPS = 1e-9


class GpuTableError(ValueError):
    """The GPU table is missing or malformed, or a lookup falls outside what it can answer."""


def default_table_path() -> Path | None:
    """``../shared/gpu-profiles/rapp_v100_latency.csv`` relative to the repository root, if it is there."""
    root = Path(__file__).resolve().parents[3]
    p = root.parent / "shared" / "gpu-profiles" / "rapp_v100_latency.csv"
    return p if p.is_file() else None


@dataclass(frozen=True)
class GpuShare:
    """A fraction of one GPU: SM partition ``sm`` and time quota ``quota`` (both in (0, 1]), and a memory cap."""

    sm: float = 1.0
    quota: float = 1.0
    memory_mb: int = 0

    def __post_init__(self) -> None:
        for name in ("sm", "quota"):
            v = getattr(self, name)
            if not (0 < v <= 1):
                raise GpuTableError(f"GPU share {name} must be in (0, 1], got {v!r}")
        if self.memory_mb < 0:
            raise GpuTableError(f"GPU share memory_mb must be >= 0, got {self.memory_mb!r}")

    @property
    def fraction(self) -> float:
        """The share of the device's capacity it holds: sm x quota (what admission sums and what is priced)."""
        return self.sm * self.quota


class GpuTable:
    """Measured latency per model on a (batch, sm %, quota %) grid, interpolated."""

    def __init__(self, points: dict[str, dict[tuple[int, int, int], float]], source: str = "") -> None:
        if not points:
            raise GpuTableError("the GPU table holds no measurements")
        self.source = source
        self._grids: dict[str, tuple[list[float], list[float], list[float], np.ndarray]] = {}
        for model, pts in points.items():
            bs = sorted({b for b, _, _ in pts})
            ss = sorted({s for _, s, _ in pts})
            qs = sorted({q for _, _, q in pts})
            grid = np.full((len(bs), len(ss), len(qs)), np.nan)
            for (b, s, q), v in pts.items():
                grid[bs.index(b), ss.index(s), qs.index(q)] = v
            _fill_holes(grid)
            self._grids[model] = ([float(b) for b in bs], [float(s) for s in ss], [float(q) for q in qs], grid)

    @classmethod
    def load(cls, path: str | Path | None = None) -> GpuTable:
        """Read ``model, batch, sm_percent, quota_percent, latency_ms`` rows (the default table if no path)."""
        p = Path(path) if path is not None else default_table_path()
        if p is None or not p.is_file():
            raise GpuTableError(f"no GPU table at {str(p)!r}; pass the path of a gpu-profiles CSV")
        points: dict[str, dict[tuple[int, int, int], float]] = {}
        with p.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    key = (int(row["batch"]), int(row["sm_percent"]), int(row["quota_percent"]))
                    points.setdefault(row["model"], {})[key] = float(row["latency_ms"]) / 1e3
                except (KeyError, ValueError) as e:
                    raise GpuTableError(f"{p}: bad row {row!r}: {e}") from None
        return cls(points, source=str(p))

    @property
    def models(self) -> list[str]:
        return sorted(self._grids)

    def latency_s(self, model: str, batch: int, sm: float, quota: float) -> float:
        """Latency in seconds of one batch of ``model`` on a share of ``sm`` and ``quota`` (fractions in (0, 1])."""
        try:
            bs, ss, qs, grid = self._grids[model]
        except KeyError:
            raise GpuTableError(f"model {model!r} is not in the GPU table ({len(self._grids)} models)") from None
        if batch < 1:
            raise GpuTableError(f"batch must be >= 1, got {batch!r}")
        if not (0 < sm <= 1 + _EPS and 0 < quota <= 1 + _EPS):
            raise GpuTableError(f"sm and quota are fractions in (0, 1], got {sm!r}, {quota!r}")
        s = min(max(sm * 100, ss[0]), ss[-1])
        q = min(max(quota * 100, qs[0]), qs[-1])
        if batch > bs[-1] and len(bs) > 1:  # linear extrapolation from the two largest measured batches
            hi = self._at(grid, len(bs) - 1, ss, qs, s, q)
            lo = self._at(grid, len(bs) - 2, ss, qs, s, q)
            return hi + (hi - lo) * (batch - bs[-1]) / (bs[-1] - bs[-2])
        i, w = _bracket(bs, float(batch))
        v = self._at(grid, i, ss, qs, s, q)
        return v if w == 0 else (1 - w) * v + w * self._at(grid, i + 1, ss, qs, s, q)

    @staticmethod
    def _at(grid: np.ndarray, b: int, ss: list[float], qs: list[float], s: float, q: float) -> float:
        i, u = _bracket(ss, s)
        j, v = _bracket(qs, q)
        g = grid[b]
        i1, j1 = min(i + 1, len(ss) - 1), min(j + 1, len(qs) - 1)
        top = (1 - v) * g[i, j] + v * g[i, j1]
        bottom = (1 - v) * g[i1, j] + v * g[i1, j1]
        return float((1 - u) * top + u * bottom)


def _bracket(xs: list[float], x: float) -> tuple[int, float]:
    """Index i and weight w with x = (1 - w) xs[i] + w xs[i + 1]; w = 0 exactly on a grid point."""
    i = bisect_right(xs, x) - 1
    i = min(max(i, 0), len(xs) - 1)
    if i == len(xs) - 1 or xs[i] == x:
        return i, 0.0
    return i, (x - xs[i]) / (xs[i + 1] - xs[i])


def _fill_holes(grid: np.ndarray) -> None:
    for b in range(grid.shape[0]):
        g = grid[b]
        holes = np.argwhere(np.isnan(g))
        known = np.argwhere(~np.isnan(g))
        if len(holes) == 0:
            continue
        if len(known) == 0:
            raise GpuTableError("a batch size of a model has no measured point")
        for h in holes:
            d = ((known - h) ** 2).sum(axis=1)
            k = known[int(np.argmin(d))]
            g[h[0], h[1]] = g[k[0], k[1]]


@dataclass
class GpuDevice:
    """One GPU of a node, and the shares admitted on it."""

    memory_mb: int
    shares: dict[str, GpuShare] = field(default_factory=dict)
    used: float = 0.0  # sum of sm * quota
    used_memory_mb: int = 0

    def admits(self, share: GpuShare) -> bool:
        """FaST-GShare admission: sum of sm x quota stays <= 1 and memory caps fit the device."""
        return self.used + share.fraction <= 1 + _EPS and self.used_memory_mb + share.memory_mb <= self.memory_mb

    def admit(self, key: str, share: GpuShare) -> None:
        if not self.admits(share):
            raise GpuTableError(f"share {share} does not fit: {self.used:.3g} used, {self.used_memory_mb} MiB taken")
        self.shares[key] = share
        self.used += share.fraction
        self.used_memory_mb += share.memory_mb

    def release(self, key: str) -> None:
        share = self.shares.pop(key)
        self.used = max(0.0, self.used - share.fraction)
        self.used_memory_mb -= share.memory_mb
        if not self.shares:
            self.used = 0.0  # no float residue on an empty device


def sm_quota_for(gpu: float) -> GpuShare:
    """The default share for a ``Resources.gpu`` fraction: a spatial partition of that size, full time quota."""
    if not 0 < gpu <= 1:
        raise GpuTableError(f"gpu fraction must be in (0, 1], got {gpu!r}")
    return GpuShare(sm=gpu, quota=1.0)
