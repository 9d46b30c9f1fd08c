"""k-means as worker steps: Lloyd's algorithm (full shard per round) and mini-batch k-means (Sculley, WWW 2010).

The model vector is the centres (k by d, row-major) followed by each centre's running count of assigned rows (used by
the mini-batch update; Lloyd's ignores it). A worker's contribution is, per centre, the sum and the count of the rows
nearest to it, plus their inertia (sum of squared distances), so contributions of workers add up exactly.

An empty cluster keeps its centre (scikit-learn moves it to a far point instead; see docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from shoal.train.algorithms._parallel import ProcessCores, run_blocks, with_constant_column

__all__ = ["KMeans", "assign"]


def assign(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and the squared distance to it (the distance computed exactly, not expanded)."""
    cross = X @ centers.T
    d2 = (centers * centers).sum(axis=1)[None, :] - 2.0 * cross
    labels = d2.argmin(axis=1)
    diff = X - centers[labels]
    return labels, np.einsum("ij,ij->i", diff, diff)


@dataclass
class KMeans:
    n_features: int
    k: int = 8
    #: Rows of its shard a worker uses per round; 0 = all of them (Lloyd's algorithm).
    batch_size: int = 0
    name: str = "kmeans"

    def centers(self, model: np.ndarray) -> np.ndarray:
        return model[: self.k * self.n_features].reshape(self.k, self.n_features)

    def initial_model(self, centers: np.ndarray) -> np.ndarray:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.shape != (self.k, self.n_features):
            raise ValueError(f"initial centres have shape {centers.shape}, expected ({self.k}, {self.n_features})")
        return np.concatenate([centers.ravel(), np.zeros(self.k)])

    # -- the kernel ----------------------------------------------------------------------------------------------
    # A worker's shard is kept *prepared*: each row with a constant -1 appended (``prepare``), and each centre with
    # ||c||²/2 appended, so one BLAS product gives x·c - ||c||²/2, whose argmax is the nearest centre (the order of
    # scikit-learn's ||c||² - 2x·c: scaling by 2 is exact). The per-centre sums of the prepared rows (a sparse
    # indicator matrix times the block) give the sums and, in the appended column, minus the counts. Inertia needs
    # no extra pass: sum_i min_j ||x_i - c_j||² = sum_i ||x_i||² - 2·sum_j (S_j·c_j - n_j·||c_j||²/2), where the
    # first term is computed once per shard and the second from the k-by-(d+1) sums. Per round: one product, one
    # argmax and one sparse product per block (200 000 x 16, k = 16, one core: 31 -> 10 ms per pass; see
    # docs/training.md). The final metrics still use exact differences (``assign``).
    block_rows: int = 8192

    def prepare(self, X: np.ndarray, cache: bool = True) -> np.ndarray:
        """The shard as the kernel reads it: rows with -1 appended (float64, C order). Idempotent."""
        return with_constant_column(self, X, self.n_features, -1.0, cache)

    def block_width(self) -> int:
        return self.k * (self.n_features + 1)

    def _sumsq(self, Xp: np.ndarray) -> float:
        """sum ||x||² over the rows of a prepared array, cached for the shard (the same array every round)."""
        cached = self.__dict__.get("_sumsq_of")
        if cached is not None and cached[0] is Xp:
            return float(cached[1])
        value = float(np.einsum("ij,ij->", Xp[:, :-1], Xp[:, :-1]))
        self.__dict__["_sumsq_of"] = (Xp, value)
        return value

    def _augmented_centers(self, model: np.ndarray) -> np.ndarray:
        c = self.centers(model)
        return np.concatenate([c, 0.5 * np.einsum("ij,ij->i", c, c)[:, None]], axis=1)

    def block_fn(self, kind: str, model: np.ndarray) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
        ca = self._augmented_centers(model)
        k = self.k
        if kind == "score":
            c = self.centers(model)
            return lambda xb, _yb: np.array([assign(xb[:, :-1], c)[1].sum(), len(xb)])
        cat = np.ascontiguousarray(ca.T)

        def block(xb: np.ndarray, _yb: np.ndarray | None) -> np.ndarray:
            labels = (xb @ cat).argmax(axis=1)
            ind = sp.csc_array((np.ones(len(xb)), labels, np.arange(len(xb) + 1)), shape=(k, len(xb)))
            return np.asarray(ind @ xb).ravel()

        return block

    def partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int | ProcessCores) -> np.ndarray:
        Xp = self.prepare(X)
        k, d = self.k, self.n_features
        sa = run_blocks(self, "partial", model, Xp, None, cores).reshape(k, d + 1)
        ca = self._augmented_centers(model)
        inertia = self._sumsq(Xp) - 2.0 * float(np.einsum("ij,ij->", sa, ca))
        return np.concatenate([sa[:, :d].ravel(), -sa[:, d], [max(inertia, 0.0), len(Xp)]])

    def apply(self, model: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, float]:
        k, d = self.k, self.n_features
        sums = total[: k * d].reshape(k, d)
        counts = total[k * d : k * d + k]
        inertia, rows = float(total[-2]), float(total[-1])
        centers = self.centers(model).copy()
        seen = model[k * d :].copy()
        hit = counts > 0
        if self.batch_size == 0:  # Lloyd: the mean of the rows assigned to each centre
            centers[hit] = sums[hit] / counts[hit, None]
            loss = inertia
        else:  # mini-batch: each centre moves towards its batch mean with a learning rate 1 / (rows seen so far)
            seen += counts
            centers[hit] += (sums[hit] - counts[hit, None] * centers[hit]) / seen[hit, None]
            loss = inertia / max(rows, 1.0)
        return np.concatenate([centers.ravel(), seen]), loss

    # -- SSP / ASP: the model is the running mean of every row assigned so far (Sculley's update, in closed form) ----
    def update_size(self) -> int:
        return self.k * self.n_features + self.k

    def model_from(self, init: np.ndarray, updates: np.ndarray) -> np.ndarray:
        """Centres from the summed per-centre sums and counts of all workers; a centre never hit keeps its init."""
        k, d = self.k, self.n_features
        sums, counts = updates[: k * d].reshape(k, d), updates[k * d :]
        centers = self.centers(init).copy()
        hit = counts > 0
        centers[hit] = sums[hit] / counts[hit, None]
        return np.concatenate([centers.ravel(), counts])

    def delta(self, model: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, float]:
        if self.batch_size == 0:
            raise ValueError("SSP and ASP k-means is mini-batch k-means: give batch_size > 0")
        return part[: self.update_size()].copy(), float(part[-2]) / max(float(part[-1]), 1.0)

    def score_partial(
        self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int | ProcessCores
    ) -> np.ndarray:
        return run_blocks(self, "score", model, self.prepare(X), None, cores)

    def score(self, model: np.ndarray, total: np.ndarray) -> dict[str, float]:
        return {"inertia": float(total[0]), "rows": float(total[1])}
