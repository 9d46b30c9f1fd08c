"""Training algorithms as worker steps over a data shard.

An algorithm is three pure steps around a flat float64 *model* vector, so that the synchronisation layer
(:mod:`shoal.train.worker`) can reduce, checkpoint and restore any of them the same way:

- ``partial(model, X, y, rows, cores)``: this worker's contribution for one round, a flat vector of *sums* over the
  rows it used (so that contributions of workers add up);
- ``apply(model, total)``: the next model from the sum of every worker's contribution, and the round's loss;
- ``score_partial`` / ``score``: the same pair for the final evaluation over all the data.

For stale-synchronous and asynchronous training (SSP, ASP) an algorithm also states its model as the initial model
plus a sum of per-worker *updates* (``update_size``, ``model_from``), and turns a contribution computed on a possibly
stale model into this worker's update (``delta``). Each worker owns the running sum of its own updates.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["Algorithm", "make_algorithm"]


class Algorithm(Protocol):
    name: str
    #: Rows of its shard a worker uses per round; 0 means the whole shard (full-batch).
    batch_size: int

    def partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int) -> np.ndarray: ...

    def apply(self, model: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, float]: ...

    def score_partial(self, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int) -> np.ndarray: ...

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
