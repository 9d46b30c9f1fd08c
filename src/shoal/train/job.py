"""``shoal.train.train``: run one training job end to end from Python (the ``shoal train`` command calls it).

The driver writes the data where workers can read it (one .npy per array; each worker memory-maps its shard), opens
the job's store and puts the initial model there, maps W workers on the executor, reports each round's loss as
worker 0 publishes it, and returns the model, the final metrics over all the data, and what the job cost.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.train.algorithms import make_algorithm
from shoal.train.executor import FunctionExecutor
from shoal.train.redisserver import RedisServer
from shoal.train.store import StateStore, StoreRestarted, StoreSpec, open_store
from shoal.train.worker import JobSpec, run_worker

__all__ = ["TrainResult", "initial_centers", "train"]

ALGORITHMS = ("kmeans", "logreg")


@dataclass
class TrainResult:
    algorithm: str
    model: np.ndarray
    metrics: dict[str, float]
    losses: list[float]
    workers: int
    cores: int
    backend: str
    store: str
    wall_s: float
    cost: dict[str, Any] | None = None
    per_worker: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "workers": self.workers,
            "cores": self.cores,
            "backend": self.backend,
            "store": self.store,
            "rounds": len(self.losses),
            "losses": self.losses,
            "metrics": self.metrics,
            "wall_ms": round(self.wall_s * 1e3, 3),
            "cost": self.cost,
            "model": self.model.tolist(),
            "per_worker": [{k: v for k, v in w.items() if k != "model"} for w in self.per_worker],
        }


def initial_centers(X: np.ndarray, k: int, init: str | np.ndarray = "k-means++", seed: int = 0) -> np.ndarray:
    """``k`` initial centres: given, ``k-means++`` (scikit-learn's), or ``random`` rows."""
    if not isinstance(init, str):
        return np.asarray(init, dtype=np.float64)
    if init == "k-means++":
        from sklearn.cluster import kmeans_plusplus

        centers, _ = kmeans_plusplus(np.asarray(X, dtype=np.float64), k, random_state=seed)
        return np.asarray(centers, dtype=np.float64)
    if init == "random":
        rows = np.random.default_rng(seed).choice(len(X), size=k, replace=False)
        return np.asarray(X[np.sort(rows)], dtype=np.float64)
    raise ValueError(f"unknown init {init!r}: use k-means++, random, or pass an array")


def train(
    algorithm: str,
    X: np.ndarray,
    y: np.ndarray | None = None,
    *,
    workers: int = 4,
    cores: int = 1,
    rounds: int = 10,
    store: str = "local",
    redis_url: str | None = None,
    backend: str | None = None,
    executor: FunctionExecutor | None = None,
    engine_config: dict[str, Any] | None = None,
    comm: str = "allreduce",
    sync: str = "bsp",
    staleness: int = 2,
    significance: float = 0.0,
    init: str | np.ndarray = "k-means++",
    seed: int = 0,
    checkpoint_every: int = 5,
    on_round: Callable[[int, float], None] | None = None,
    worker_fn: Callable[..., dict[str, Any]] = run_worker,
    **params: Any,
) -> TrainResult:
    """Train ``algorithm`` (``kmeans`` or ``logreg``) on ``X`` (and labels ``y``) with W workers of C cores each.

    ``params`` go to the algorithm: ``k``, ``batch_size`` (k-means); ``lr``, ``alpha``, ``batch_size`` (logreg).
    ``store="local"`` keeps state in this process and needs thread workers (``backend="threads"``, its default);
    ``store="redis"`` uses ``redis_url``, or a private redis-server started for the job, and suits every back end
    (default ``local``: Shoal functions). ``on_round(r, loss)`` is called as rounds complete. ``worker_fn`` replaces
    :func:`~shoal.train.worker.run_worker` (same signature; it should call it): a hook for tests and instrumentation.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    if store not in ("local", "redis"):
        raise ValueError(f"unknown store {store!r}: use local or redis")
    backend = executor.engine.name if executor is not None else backend or ("threads" if store == "local" else "local")
    if store == "local" and backend != "threads":
        raise ValueError(f"the local store lives in this process; back end {backend!r} needs --store redis")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < workers:
        raise ValueError(f"X must be 2-D with at least one row per worker, got shape {X.shape}")
    if algorithm == "logreg" and (y is None or len(y) != len(X)):
        raise ValueError("logreg needs labels y, one per row of X")
    job = f"{algorithm}-{secrets.token_hex(4)}"
    tmp = tempfile.mkdtemp(prefix=f"shoal-{job}-")
    server: RedisServer | None = None
    ex = executor
    t0 = time.perf_counter()
    try:
        spec_store = StoreSpec("local", job)
        if store == "redis":
            if redis_url is None:
                server = RedisServer()
                server.start()
                redis_url = server.url
            spec_store = StoreSpec("redis", job, redis_url)
        spec = JobSpec(
            job=job,
            algorithm=algorithm,
            workers=workers,
            cores=cores,
            rounds=rounds,
            data_x=_save(tmp, "X", X),
            data_y=_save(tmp, "y", np.asarray(y, dtype=np.float64)) if y is not None else "",
            store=spec_store,
            params=dict(params),
            comm=comm,
            sync=sync,
            staleness=staleness,
            significance=significance,
            seed=seed,
            checkpoint_every=checkpoint_every,
        )
        st = open_store(spec_store)
        algo = make_algorithm(algorithm, spec.params, X.shape[1])
        if algorithm == "kmeans":
            model = algo.initial_model(initial_centers(X, int(params.get("k", 8)), init, seed))  # type: ignore[attr-defined]
        else:
            model = algo.initial_model()  # type: ignore[attr-defined]
        st.put("init", model)
        st.checkpoint()
        if ex is None:
            ex = FunctionExecutor(backend, workers=workers, cores=cores, config=engine_config)
        fs = ex.map(worker_fn, [{"job": spec.to_dict(), "worker": w} for w in range(workers)])
        try:
            losses = _follow(st, [f._fut for f in fs], rounds, on_round)
        except BaseException:
            with contextlib.suppress(Exception):
                st.put("abort", np.ones(1))  # the other workers stop waiting for the one that failed
            raise
        results = sorted(ex.get_result(fs), key=lambda r: r["worker"])
        cost = ex.cost()
        st.clear()
        st.close()
    finally:
        if ex is not None and executor is None:
            ex.close()
        if server is not None:
            server.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return TrainResult(
        algorithm=algorithm,
        model=np.asarray(results[0]["model"]),
        metrics=dict(results[0]["metrics"]),
        losses=losses,
        workers=workers,
        cores=cores,
        backend=backend,
        store=store,
        wall_s=time.perf_counter() - t0,
        cost=cost,
        per_worker=results,
    )


def _save(tmp: str, name: str, a: np.ndarray) -> str:
    path = os.path.join(tmp, f"{name}.npy")
    np.save(path, a)
    return path


def _follow(
    st: StateStore, fs: list[cf.Future[Any]], rounds: int, on_round: Callable[[int, float], None] | None
) -> list[float]:
    """Report each round's loss as worker 0 publishes it, until every worker is done; returns the losses."""
    losses: list[float] = []

    def poll() -> None:
        try:
            done = min(rounds, st.counter("rounds_done"))
            while len(losses) < done:
                v = st.get(f"loss:{len(losses)}")
                if v is None:
                    return
                losses.append(float(v[0]))
                if on_round is not None:
                    on_round(len(losses) - 1, losses[-1])
        except StoreRestarted:
            pass  # the workers resume from the checkpoint; rounds reported already stay reported

    while True:
        _, pending = cf.wait(fs, timeout=0.05, return_when=cf.FIRST_EXCEPTION)
        failed = [f for f in fs if f.done() and f.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        poll()
        if not pending:
            return losses
