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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shoal.train.algorithms import make_algorithm
from shoal.train.autotune import decide
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
    #: With ``autotune``: the workers of each round, and each scale-in (round, decision).
    workers_per_round: list[int] = field(default_factory=list)
    scale_ins: list[dict[str, Any]] = field(default_factory=list)

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
            "workers_per_round": self.workers_per_round,
            "scale_ins": self.scale_ins,
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
    parallel: str = "threads",
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
    autotune: bool | dict[str, Any] = False,
    **params: Any,
) -> TrainResult:
    """Train ``algorithm`` (``kmeans`` or ``logreg``) on ``X`` (and labels ``y``) with W workers of C cores each.

    ``params`` go to the algorithm: ``k``, ``batch_size`` (k-means); ``lr``, ``alpha``, ``batch_size``, ``solver``
    (``gd`` or ``lbfgs``: full-batch L-BFGS, BSP; logreg). ``parallel`` says how each worker uses its C cores:
    ``threads`` (default) or ``processes`` (shared-memory shard; same results bit for bit).
    ``store="local"`` keeps state in this process and needs thread workers (``backend="threads"``, its default);
    ``store="redis"`` uses ``redis_url``, or a private redis-server started for the job, and suits every back end
    (default ``local``: Shoal functions). ``on_round(r, loss)`` is called as rounds complete. ``worker_fn`` replaces
    :func:`~shoal.train.worker.run_worker` (same signature; it should call it): a hook for tests and instrumentation.

    ``autotune=True`` (BSP only) runs MLLess's scale-in auto-tuner (:func:`shoal.train.autotune.decide`) after every
    round; when it removes a worker the workers stop after the same round and the job goes on from that model with
    fewer workers (the data re-sharded). A dict instead of True gives ``decide``'s keyword options (``window``,
    ``threshold``, ``min_workers``) and ``cost_per_worker_s`` (default: C vCPU at the default price table).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    if store not in ("local", "redis"):
        raise ValueError(f"unknown store {store!r}: use local or redis")
    backend = executor.engine.name if executor is not None else backend or ("threads" if store == "local" else "local")
    if store == "local" and backend != "threads":
        raise ValueError(f"the local store lives in this process; back end {backend!r} needs --store redis")
    if parallel == "processes" and backend == "threads" and cores > 1:
        raise ValueError(
            "parallel='processes' forks helper processes, which is unsafe where other worker threads of the same "
            "process run NumPy (the threads back end): use the local back end (--store redis), or threads"
        )
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
            parallel=parallel,
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
        if autotune and sync != "bsp":
            raise ValueError("autotune needs --sync bsp")
        if params.get("solver", "gd") != "gd" and sync != "bsp":
            raise ValueError(f"solver {params['solver']!r} needs --sync bsp (SSP/ASP logreg is solver gd)")
        algo = make_algorithm(algorithm, spec.params, X.shape[1])
        if algorithm == "kmeans":
            model = algo.initial_model(initial_centers(X, int(params.get("k", 8)), init, seed))  # type: ignore[attr-defined]
        else:
            model = algo.initial_model()  # type: ignore[attr-defined]
        if ex is None:
            ex = FunctionExecutor(backend, workers=workers, cores=cores, config=engine_config)
        tuner = _Tuner(autotune, cores, workers) if autotune else None
        losses: list[float] = []
        W, segment = workers, 0
        while True:  # one segment per worker count; without autotune, one
            seg = replace(spec, job=job if segment == 0 else f"{job}-{segment}", workers=W, rounds=rounds - len(losses),
                          round0=len(losses), stoppable=tuner is not None,
                          store=replace(spec.store, job=job if segment == 0 else f"{job}-{segment}"))  # fmt: skip
            st = open_store(seg.store)
            st.put("init", model)
            st.checkpoint()
            fs = ex.map(worker_fn, [{"job": seg.to_dict(), "worker": w} for w in range(W)])
            watch = None if tuner is None else tuner.watcher(st, W, len(losses))
            try:
                losses += _follow(st, [f._fut for f in fs], seg.rounds, on_round, len(losses), watch)
            except BaseException:
                with contextlib.suppress(Exception):
                    st.put("abort", np.ones(1))  # the other workers stop waiting for the one that failed
                raise
            results = sorted(ex.get_result(fs), key=lambda r: r["worker"])
            st.clear()
            st.close()
            stopped = results[0].get("stopped_at")
            if tuner is None or stopped is None:
                if tuner is not None and tuner.pending is not None:
                    tuner.scale_ins.pop()  # decided too near the end to act on
                break
            tuner.scale_ins[-1]["from_round"] = len(losses)
            model = np.asarray(results[0]["model"])
            W, segment = tuner.pending or W, segment + 1
            tuner.pending = None
            # Release the removed worker's instance now: every worker has returned, so it is idle.
            tuner.scale_ins[-1]["released"] = ex.engine.resize(W)
        cost = ex.cost()
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
        workers_per_round=tuner.workers_per_round if tuner is not None else [workers] * len(losses),
        scale_ins=tuner.scale_ins if tuner is not None else [],
    )


def _save(tmp: str, name: str, a: np.ndarray) -> str:
    path = os.path.join(tmp, f"{name}.npy")
    np.save(path, a)
    return path


class _Tuner:
    """The driver's side of the auto-tuner: the job's history, the policy's decisions, and the ``stop`` request."""

    def __init__(self, options: bool | dict[str, Any], cores: int, workers: int) -> None:
        opts = dict(options) if isinstance(options, dict) else {}
        from shoal.predict.prices import DEFAULT_PRICES

        self.price = float(opts.pop("cost_per_worker_s", cores * DEFAULT_PRICES.per_vcpu_s))
        self.options = opts
        self.losses: list[float] = []
        self.round_s: list[float] = []
        self.workers_per_round: list[int] = []
        self.scale_ins: list[dict[str, Any]] = []
        self.pending: int | None = None

    def watcher(self, st: StateStore, W: int, offset: int) -> Callable[[int, float, float], None]:
        def watch(r: int, loss: float, seconds: float) -> None:
            self.losses.append(loss)
            self.round_s.append(seconds)
            self.workers_per_round.append(W)
            if self.pending is not None:
                return
            d = decide(self.losses, W, self.round_s, self.price, workers_per_round=self.workers_per_round,
                       **self.options)  # fmt: skip
            if d.workers < W:
                self.pending = d.workers
                self.scale_ins.append({"after_round": offset + r + 1} | d.to_dict())
                st.put("stop", np.ones(1))

        return watch


def _follow(
    st: StateStore,
    fs: list[cf.Future[Any]],
    rounds: int,
    on_round: Callable[[int, float], None] | None,
    offset: int = 0,
    watch: Callable[[int, float, float], None] | None = None,
) -> list[float]:
    """Report each round's loss as worker 0 publishes it, until every worker is done; returns the losses.
    ``offset``: rounds reported before (by earlier segments); ``watch(r, loss, round_seconds)`` sees every round."""
    losses: list[float] = []

    def poll() -> None:
        try:
            done = min(rounds, st.counter("rounds_done"))
            while len(losses) < done:
                v = st.get(f"loss:{len(losses)}")
                if v is None:
                    return
                losses.append(float(v[0]))
                if watch is not None:
                    watch(len(losses) - 1, losses[-1], float(v[1]) if len(v) > 1 else 0.0)
                if on_round is not None:
                    on_round(offset + len(losses) - 1, losses[-1])
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
