"""One model's measured GPU latency on a (batch, SM %, quota %) grid, interpolated between measured points.

Between grid points latency is trilinear in (batch, SM %, quota %), as RaPP interpolates its tables; a measured point
comes back exactly. Outside the grid: batch above the largest measured is extrapolated linearly from the two largest
(GPU latency grows about linearly in batch once the device is busy); SM % and quota % below the smallest measured take
the smallest's value. A hole in the grid (a point not measured) takes the nearest measured point of the same batch,
so a table with a few missing rows still answers everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shoal.predict.latency_table import LatencyTableError

__all__ = ["ModelGrid"]


class ModelGrid:
    """Latency in ms of one model; :meth:`at` interpolates arrays of points at once."""

    def __init__(self, name: str, points: Mapping[tuple[int, int, int], float]) -> None:
        if not points:
            raise LatencyTableError(f"model {name!r} has no measured point")
        self.name = name
        self.batches = np.array(sorted({b for b, _, _ in points}), dtype=np.float64)
        self.sms = np.array(sorted({s for _, s, _ in points}), dtype=np.float64)
        self.quotas = np.array(sorted({q for _, _, q in points}), dtype=np.float64)
        grid = np.full((len(self.batches), len(self.sms), len(self.quotas)), np.nan)
        bi = {int(b): i for i, b in enumerate(self.batches)}
        si = {int(s): i for i, s in enumerate(self.sms)}
        qi = {int(q): i for i, q in enumerate(self.quotas)}
        for (b, s, q), v in points.items():
            grid[bi[b], si[s], qi[q]] = v
        _fill_holes(grid, name)
        self.log_grid = np.log(grid)

    def at(self, batch: np.ndarray, sm: np.ndarray, quota: np.ndarray) -> np.ndarray:
        """Latency (ms) at each (batch, sm %, quota %); interpolation is done on log latency (see the module)."""
        b = np.asarray(batch, dtype=np.float64)
        s = np.clip(np.asarray(sm, dtype=np.float64), self.sms[0], self.sms[-1])
        q = np.clip(np.asarray(quota, dtype=np.float64), self.quotas[0], self.quotas[-1])
        s_i, s_w = _bracket(self.sms, s)
        q_i, q_w = _bracket(self.quotas, q)
        if len(self.batches) == 1:
            return np.exp(self._plane(0, s_i, s_w, q_i, q_w))
        top = float(self.batches[-1])
        inside = np.minimum(b, top)
        b_i, b_w = _bracket(self.batches, inside)
        lo = self._plane(b_i, s_i, s_w, q_i, q_w)
        hi = self._plane(np.minimum(b_i + 1, len(self.batches) - 1), s_i, s_w, q_i, q_w)
        out = np.exp((1 - b_w) * lo + b_w * hi)
        over = b > top
        if np.any(over):  # linear in batch beyond the grid, from the two largest measured batches
            n = len(self.batches)
            v_hi = np.exp(self._plane(np.full(b.shape, n - 1), s_i, s_w, q_i, q_w))
            v_lo = np.exp(self._plane(np.full(b.shape, n - 2), s_i, s_w, q_i, q_w))
            slope = np.maximum(v_hi - v_lo, 0.0) / (top - self.batches[-2])
            out = np.where(over, v_hi + slope * (b - top), out)
        return out

    def _plane(
        self, b_i: np.ndarray | int, s_i: np.ndarray, s_w: np.ndarray, q_i: np.ndarray, q_w: np.ndarray
    ) -> np.ndarray:
        g = self.log_grid
        s_j = np.minimum(s_i + 1, len(self.sms) - 1)
        q_j = np.minimum(q_i + 1, len(self.quotas) - 1)
        a = (1 - q_w) * g[b_i, s_i, q_i] + q_w * g[b_i, s_i, q_j]
        c = (1 - q_w) * g[b_i, s_j, q_i] + q_w * g[b_i, s_j, q_j]
        return (1 - s_w) * a + s_w * c


def _bracket(xs: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index i and weight w with x = (1 - w) xs[i] + w xs[i + 1] (w = 0 on a grid point and past the last)."""
    x = np.clip(x, xs[0], xs[-1])
    i = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 1)
    nxt = np.minimum(i + 1, len(xs) - 1)
    span = xs[nxt] - xs[i]
    w = np.where(span > 0, (x - xs[i]) / np.where(span > 0, span, 1.0), 0.0)
    return i, w


def _fill_holes(grid: np.ndarray, name: str) -> None:
    for b in range(grid.shape[0]):
        g = grid[b]
        holes = np.argwhere(np.isnan(g))
        if len(holes) == 0:
            continue
        known = np.argwhere(~np.isnan(g))
        if len(known) == 0:
            raise LatencyTableError(f"model {name!r}: a batch size has no measured point at any SM % and quota %")
        for h in holes:
            k = known[int(np.argmin(((known - h) ** 2).sum(axis=1)))]
            g[h[0], h[1]] = g[k[0], k[1]]
