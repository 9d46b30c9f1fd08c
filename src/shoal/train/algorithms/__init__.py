"""Training algorithms as worker steps over a data shard.

An algorithm is three pure steps around a flat float64 *model* vector, so that the synchronisation layer
(:mod:`shoal.train.worker`) can reduce, checkpoint and restore any of them the same way:

- ``partial(model, X, y, rows, cores)``: this worker's contribution for one round, a flat vector of *sums* over the
  rows it used (so that contributions of workers add up);
- ``apply(model, total)``: the next model from the sum of every worker's contribution, and the round's loss;
- ``score_partial`` / ``score``: the same pair for the final evaluation over all the data.

Both partials are sums over row blocks of a kernel (``block_fn(kind, model)``) run on the *prepared* shard
(``prepare``: each row with a constant column appended, so one matrix product does what two would), on C threads or
C processes (:mod:`shoal.train.algorithms._parallel`).

For stale-synchronous and asynchronous training (SSP, ASP) an algorithm also states its model as the initial model
plus a sum of per-worker *updates* (``update_size``, ``model_from``), and turns a contribution computed on a possibly
stale model into this worker's update (``delta``). Each worker owns the running sum of its own updates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from shoal.train.algorithms._parallel import ProcessCores

#: A worker's cores: a thread count, or a pool of processes that holds its shard.
Cores = int | ProcessCores

__all__ = ["Algorithm", "Cores", "make_algorithm"]


class Algorithm(Protocol):
    name: str
    #: Rows of its shard a worker uses per round; 0 means the whole shard (full-batch).
    batch_size: int
    #: Rows per block of the kernel.
    block_rows: int

    def prepare(self, X: np.ndarray, cache: bool = True) -> np.ndarray: ...

    def block_width(self) -> int: ...

    def block_fn(self, kind: str, model: np.ndarray) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]: ...

    def partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: Cores) -> np.ndarray: ...

    def apply(self, model: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, float]: ...

    def score_partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: Cores) -> np.ndarray: ...

    def score(self, model: np.ndarray, total: np.ndarray) -> dict[str, float]: ...

    def update_size(self) -> int: ...

    def model_from(self, init: np.ndarray, updates: np.ndarray) -> np.ndarray: ...

    def delta(self, model: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, float]: ...


def make_algorithm(name: str, params: dict[str, Any], n_features: int) -> Algorithm:
    if name == "kmeans":
        from shoal.train.algorithms.kmeans import KMeans

        return KMeans(n_features=n_features, **params)
    if name == "logreg":
        from shoal.train.algorithms.logreg import LogReg

        return LogReg(n_features=n_features, **params)
    raise ValueError(f"unknown algorithm {name!r}: use kmeans or logreg")
