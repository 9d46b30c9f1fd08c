"""The training worker: one serverless function invocation that trains on its shard, in rounds, through a store.

Synchronisation is BSP (bulk-synchronous): in round ``r`` every worker computes its contribution with the model of
round ``r``, the contributions are summed through the store, and every worker applies the same sum, so all workers
hold the same model after every round without ever talking to each other. Two ways of summing (LambdaML's names):

- ``allreduce``: each worker writes its whole contribution; after a barrier each reads all W and sums them.
- ``scatterreduce``: each worker splits its contribution in W chunks; worker j sums chunk j of everyone and writes
  it back; after a second barrier each reads the W reduced chunks. Reads per worker fall from W·n to about 2·n.

- ``ps`` (parameter server, as in Cirrus): worker 0 serves: it reads every contribution, applies the update and
  writes the model; the other workers push their contribution and pull that model.

All three sum in worker order, so they give bit-identical models. Resuming: after each round a worker writes its own
checkpoint (round, model) to the store; a re-invoked worker (its instance was killed) starts from it. All writes of
a round are idempotent (same key, same value; barriers are sets), so redoing a round is harmless. A worker deletes
its keys of round ``r - 2``: under BSP no worker can be more than one round behind another, so none needs them.

SSP and ASP (see :func:`_train_async`) drop the per-round barrier: each worker keeps the running sum of its own
updates in the store, and builds its model from everyone's sums as it finds them (SSP first waits for the slowest
worker to be within ``staleness`` rounds). Results then depend on timing; quality is what the tests hold them to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shoal.train.algorithms import Algorithm, Cores, make_algorithm
from shoal.train.algorithms._parallel import PARALLEL, ProcessCores, one_blas_thread
from shoal.train.store import BarrierTimeout, StateStore, StoreRestarted, StoreSpec, open_store

__all__ = ["COMMS", "SYNCS", "JobAborted", "JobSpec", "barrier", "load_shard", "run_worker", "shard_bounds"]

COMMS = ("allreduce", "scatterreduce", "ps")
SYNCS = ("bsp", "ssp", "asp")


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs, as plain data (it travels to the worker through the data plane, never pickled)."""

    job: str
    algorithm: str
    workers: int
    rounds: int
    data_x: str
    store: StoreSpec
    data_y: str = ""
    cores: int = 1
    #: How the C cores are used: ``threads`` over row blocks, or ``processes`` sharing the shard (shared memory).
    parallel: str = "threads"
    params: dict[str, Any] = field(default_factory=dict)
    comm: str = "allreduce"
    sync: str = "bsp"
    #: SSP: how many rounds a worker may run ahead of the slowest one.
    staleness: int = 2
    #: SSP/ASP: MLLess's significance filter threshold (0: publish every update).
    significance: float = 0.0
    seed: int = 0
    #: Make the store durable (Redis SAVE) every this many rounds; 0: never.
    checkpoint_every: int = 5
    barrier_timeout_s: float = 120.0
    #: Rounds done before this job (the auto-tuner restarts a job with fewer workers): offsets the mini-batches.
    round0: int = 0
    #: BSP: after each round, look for a ``stop`` key (the round count to stop at) put by the driver's auto-tuner.
    stoppable: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cores < 1 or self.rounds < 0:
            raise ValueError("workers and cores must be >= 1 and rounds >= 0")
        if self.comm not in COMMS:
            raise ValueError(f"unknown communication {self.comm!r}: use one of {', '.join(COMMS)}")
        if self.sync not in SYNCS:
            raise ValueError(f"unknown sync {self.sync!r}: use one of {', '.join(SYNCS)}")
        if self.staleness < 0:
            raise ValueError("staleness must be >= 0")
        if self.sync != "bsp" and self.comm != "allreduce":
            raise ValueError(
                f"--comm {self.comm} is BSP-only: under SSP/ASP each worker reads the others' published updates "
                "directly (docs/training.md says why); use --comm allreduce, or --sync bsp"
            )
        if self.parallel not in PARALLEL:
            raise ValueError(f"unknown parallel {self.parallel!r}: use one of {', '.join(PARALLEL)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["store"] = self.store.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        return cls(**{**d, "store": StoreSpec.from_dict(d["store"]), "params": dict(d.get("params") or {})})


def shard_bounds(n: int, workers: int, w: int) -> tuple[int, int]:
    """Rows ``[a, b)`` of worker ``w``: contiguous shards whose sizes differ by at most one."""
    edges = np.linspace(0, n, workers + 1).astype(int)
    return int(edges[w]), int(edges[w + 1])


#: np.load parses the .npy header with ``ast.literal_eval``, which CPython 3.11 cannot run in several threads at once
#: ("SystemError: AST constructor recursion depth mismatch", seen in CI with the threads back end's workers starting
#: together); the headers are read one at a time, the shards themselves in parallel.
_HEADER_LOCK = threading.Lock()


def _open_npy(path: str) -> np.ndarray:
    with _HEADER_LOCK:
        return np.load(path, mmap_mode="r", allow_pickle=False)


def load_shard(spec: JobSpec, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Read worker ``w``'s rows from the job's .npy files (memory-mapped, so only the shard is read)."""
    X = _open_npy(spec.data_x)
    a, b = shard_bounds(len(X), spec.workers, w)
    xs = np.ascontiguousarray(X[a:b], dtype=np.float64)
    ys = None
    if spec.data_y:
        ys = np.ascontiguousarray(_open_npy(spec.data_y)[a:b], dtype=np.float64)
    return xs, ys


def _batch_rows(n: int, batch: int, r: int, seed: int, w: int) -> np.ndarray | None:
    """Rows of round ``r``: consecutive slices of one fixed permutation of the shard (None: the whole shard)."""
    if batch <= 0 or batch >= n:
        return None
    perm = np.random.default_rng([seed, w]).permutation(n)
    start = (r * batch) % n
    return np.take(perm, np.arange(start, start + batch), mode="wrap")


class _Sync:
    """Sums a vector over all workers through the store (one call per round and phase)."""

    def __init__(self, store: StateStore, spec: JobSpec, w: int) -> None:
        self.store, self.spec, self.w, self.W = store, spec, w, spec.workers

    def _barrier(self, key: str) -> None:
        barrier(self.store, key, self.w, self.W, self.spec.barrier_timeout_s)

    def allreduce(self, tag: str, part: np.ndarray) -> np.ndarray:
        if self.W == 1:
            return part
        if self.spec.comm == "scatterreduce":
            return self._scatterreduce(tag, part)
        self.store.put(f"part:{tag}:{self.w}", part)
        self._barrier(f"bar:{tag}")
        return _sum_in_order(self.store.get_many([f"part:{tag}:{j}" for j in range(self.W)]), tag)

    def _scatterreduce(self, tag: str, part: np.ndarray) -> np.ndarray:
        chunks = np.array_split(part, self.W)
        for j, c in enumerate(chunks):
            self.store.put(f"chunk:{tag}:{j}:{self.w}", c)
        self._barrier(f"bar:{tag}")
        mine = _sum_in_order(self.store.get_many([f"chunk:{tag}:{self.w}:{i}" for i in range(self.W)]), tag)
        self.store.put(f"red:{tag}:{self.w}", mine)
        self._barrier(f"bar2:{tag}")
        reduced = self.store.get_many([f"red:{tag}:{j}" for j in range(self.W)])
        if any(c is None for c in reduced):
            raise RuntimeError(f"round {tag}: a reduced chunk is missing from the store")
        return np.concatenate([c for c in reduced if c is not None])

    def step(self, tag: str, part: np.ndarray, model: np.ndarray, algo: Algorithm) -> tuple[np.ndarray, float]:
        """One BSP round: the next model and the round's loss, from this worker's contribution."""
        if self.W == 1 or (self.spec.comm != "ps" and not getattr(algo, "stateful_apply", False)):
            return algo.apply(model, self.allreduce(tag, part))
        # Parameter server (Cirrus), and any algorithm whose update keeps state (L-BFGS, whatever the comm): worker 0
        # is the server. Workers push their contribution and pull the model the server made from all of them; only
        # the server reads contributions and applies the update.
        self.store.put(f"part:{tag}:{self.w}", part)
        if self.w == 0:
            self._barrier(f"bar:{tag}")
            total = _sum_in_order(self.store.get_many([f"part:{tag}:{j}" for j in range(self.W)]), tag)
            model, loss = algo.apply(model, total)
            self.store.put(f"model:{tag}", np.concatenate([[loss], model]))
            self.store.notify(f"model:{tag}", self.W - 1)
            return model, loss
        self.store.arrive(f"bar:{tag}", self.w, self.W)
        pulled = _wait_for(self.store, f"model:{tag}", self.spec.barrier_timeout_s)
        return pulled[1:], float(pulled[0])

    def forget(self, tag: str) -> None:
        """Delete this worker's keys of round ``tag``."""
        keys = [f"part:{tag}:{self.w}", f"red:{tag}:{self.w}", *[f"chunk:{tag}:{j}:{self.w}" for j in range(self.W)]]
        if self.w == 0:
            keys.append(f"model:{tag}")
        self.store.delete(*keys)


class JobAborted(RuntimeError):
    """The driver gave up on the job (a worker failed): the others stop instead of waiting out their timeouts."""


#: How often a waiting worker looks for the driver's ``abort`` key.
ABORT_CHECK_S = 0.5


def _check_abort(store: StateStore) -> None:
    if store.get("abort") is not None:
        raise JobAborted(f"job {store.job!r} was aborted by its driver")


def barrier(store: StateStore, key: str, w: int, parties: int, timeout_s: float) -> None:
    """``store.barrier`` that gives up early when the driver aborts the job."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            store.barrier(key, w, parties, min(ABORT_CHECK_S, max(deadline - time.monotonic(), 0.0)))
            return
        except BarrierTimeout:  # not StoreRestarted: that one must reach run_worker, which resumes
            if time.monotonic() >= deadline:
                raise
            _check_abort(store)


def _wait_for(store: StateStore, key: str, timeout_s: float) -> np.ndarray:
    """Wait for ``key`` to be written (its writer notifies ``key``; re-checked at least every 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    next_check = time.monotonic() + ABORT_CHECK_S
    while (value := store.get(key)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{key!r} did not appear in the store within {timeout_s:g} s")
        if time.monotonic() > next_check:
            _check_abort(store)
            next_check += ABORT_CHECK_S
        store.wait_change(key, 0.1)
    return value


def _sum_in_order(parts: Sequence[np.ndarray | None], tag: str) -> np.ndarray:
    present = [p for p in parts if p is not None]
    if len(present) < len(parts):
        raise RuntimeError(f"round {tag}: a worker's contribution is missing from the store")
    total = np.array(present[0], dtype=np.float64)
    for p in present[1:]:
        total += p
    return total


def run_worker(job: dict[str, Any], worker: int) -> dict[str, Any]:
    """Entry point of one worker invocation (``job`` is ``JobSpec.to_dict()``). Resumes from the store."""
    spec = JobSpec.from_dict(job)
    w = int(worker)
    X, y = load_shard(spec, w)
    algo = make_algorithm(spec.algorithm, spec.params, X.shape[1])
    X = algo.prepare(X, cache=False)  # the kernels' layout, made once per shard (the raw copy is dropped)
    pool = None
    cores: Cores = spec.cores
    if spec.parallel == "processes" and spec.cores > 1:
        pool = cores = ProcessCores(algo, X, y, spec.cores, algo.block_width())
        X, y = pool.X, pool.y  # the shared copies: the pool recognises them
    store = open_store(spec.store)
    restarts = 0
    try:
        while True:
            try:
                fn = _train if spec.sync == "bsp" else _train_async
                with one_blas_thread():  # the worker's C cores are its own threads or processes, not BLAS's
                    return fn(spec, w, algo, store, X, y, cores) | {"store_restarts": restarts}
            except StoreRestarted:
                restarts += 1  # the server lost what came after its last SAVE: start again from our checkpoint there
    finally:
        store.close()
        if pool is not None:
            pool.close()


def _train(
    spec: JobSpec, w: int, algo: Algorithm, store: StateStore, X: np.ndarray, y: np.ndarray | None, cores: Cores
) -> dict[str, Any]:
    sync = _Sync(store, spec, w)
    ck = store.get(f"ckpt:{w}")
    if ck is None:
        model = store.get("init")
        if model is None:
            raise RuntimeError(f"job {spec.job!r} has no initial model in its store")
        start = 0
    else:
        start, model = int(ck[0]), ck[1:]
    t_compute = t_sync = 0.0
    round_s: list[float] = []
    for r in range(start, spec.rounds):
        t0 = time.perf_counter()
        rows = _batch_rows(len(X), algo.batch_size, spec.round0 + r, spec.seed, w)
        Xb, yb = (X, y) if rows is None else (X[rows], None if y is None else y[rows])
        part = algo.partial(model, Xb, yb, cores)
        t1 = time.perf_counter()
        model, loss = sync.step(str(r), part, model, algo)
        t2 = time.perf_counter()
        round_s.append(t2 - t0)
        store.put(f"ckpt:{w}", np.concatenate([[r + 1.0], model]))
        if w == 0:
            store.put(f"loss:{r}", np.array([loss, t2 - t0]))  # the round's loss and how long it took
            store.incr("rounds_done")
            if spec.checkpoint_every and (r + 1) % spec.checkpoint_every == 0:
                store.checkpoint()
        if r >= 2:
            sync.forget(str(r - 2))
        t_compute += t1 - t0 + (time.perf_counter() - t2)
        t_sync += t2 - t1
        if spec.stoppable and r + 1 < spec.rounds and (stop_at := _stop_round(store, w, r)) and r + 1 >= stop_at:
            early = {"worker": w, "resumed_from": start, "compute_s": t_compute, "sync_s": t_sync, "metrics": {},
                     "round_s": round_s}  # fmt: skip
            return early | ({"stopped_at": r + 1, "model": model} if w == 0 else {"stopped_at": r + 1})
    total = sync.allreduce("final", algo.score_partial(model, X, y, cores))
    return _result(w, start, t_compute, t_sync, model, algo.score(model, total), round_s=round_s)


def _stop_round(store: StateStore, w: int, r: int) -> int:
    """The round count all workers stop at (0: none yet), once the driver has asked for a stop.

    The driver puts ``stop``; worker 0 turns it into ``stop_at`` = its rounds done + 1, at the end of round ``r``,
    before it contributes to round ``r + 1``. No other worker can finish round ``r + 1`` without that contribution,
    so each looks at ``stop_at`` again before passing it, and all stop after the same round.
    """
    if w != 0:
        v = store.get("stop_at")
        return 0 if v is None else int(v[0])
    at, asked = store.get_many(["stop_at", "stop"])
    if at is None and asked is not None:
        at = np.array([r + 2.0])
        store.put("stop_at", at)
    return 0 if at is None else int(at[0])


def _train_async(
    spec: JobSpec, w: int, algo: Algorithm, store: StateStore, X: np.ndarray, y: np.ndarray | None, cores: Cores
) -> dict[str, Any]:
    """SSP / ASP: each worker owns ``state:{w}`` = [its clock when written, the running sum of its updates] and
    ``clock:{w}`` = [rounds done]. The model a worker uses is the initial model plus everyone's published updates
    and all of its own; under SSP it first waits until the slowest worker is at most ``staleness`` rounds behind it,
    under ASP it never waits.

    Significance filter (MLLess): with ``significance`` v > 0 a worker publishes its updates only when they would
    move the model the others see by more than v relative to it (and at its last round); otherwise it keeps them
    local and publishes only its clock. A re-invoked worker resumes from its last published state and redoes the
    rounds after it.
    """
    init = store.get("init")
    if init is None:
        raise RuntimeError(f"job {spec.job!r} has no initial model in its store")
    mine = store.get(f"state:{w}")
    start = 0 if mine is None else int(mine[0])
    own = np.zeros(algo.update_size()) if mine is None else mine[1:]
    published = own.copy()
    bound = spec.staleness if spec.sync == "ssp" else None
    t_compute = t_sync = 0.0
    publishes = 0
    for r in range(start, spec.rounds):
        t0 = time.perf_counter()
        others = _read_updates(store, spec.workers, w, r, bound, spec.barrier_timeout_s, algo.update_size())
        t1 = time.perf_counter()
        model = algo.model_from(init, others + own)
        rows = _batch_rows(len(X), algo.batch_size, r, spec.seed, w)
        Xb, yb = (X, y) if rows is None else (X[rows], None if y is None else y[rows])
        step, loss = algo.delta(model, algo.partial(model, Xb, yb, cores))
        own = own + step
        last = r == spec.rounds - 1
        if last or spec.significance <= 0 or _significant(algo, init, others, own, published, spec.significance):
            store.put(f"state:{w}", np.concatenate([[r + 1.0], own]))
            published = own.copy()
            publishes += 1
        store.put(f"clock:{w}", np.array([r + 1.0]))
        if w == 0:
            store.put(f"loss:{r}", np.array([loss]))
            store.incr("rounds_done")
            if spec.checkpoint_every and (r + 1) % spec.checkpoint_every == 0:
                store.checkpoint()
        t_compute += time.perf_counter() - t1
        t_sync += t1 - t0
    barrier(store, "async-done", w, spec.workers, spec.barrier_timeout_s)
    final = [s for s in store.get_many([f"state:{j}" for j in range(spec.workers)]) if s is not None]
    model = algo.model_from(init, _sum_in_order([s[1:] for s in final], "async-done"))  # same order everywhere
    total = _Sync(store, spec, w).allreduce("final", algo.score_partial(model, X, y, cores))
    return _result(w, start, t_compute, t_sync, model, algo.score(model, total), published=publishes)


def _significant(
    algo: Algorithm, init: np.ndarray, others: np.ndarray, own: np.ndarray, published: np.ndarray, v: float
) -> bool:
    """Would publishing ``own`` instead of ``published`` move the model the others see by more than ``v``?"""
    seen = algo.model_from(init, others + published)
    change = float(np.linalg.norm(algo.model_from(init, others + own) - seen))
    return change > v * max(float(np.linalg.norm(seen)), 1e-12)


def _read_updates(
    store: StateStore, workers: int, w: int, r: int, bound: int | None, timeout_s: float, size: int
) -> np.ndarray:
    """The other workers' published updates, summed in worker order, once the slowest clock is at least ``r - bound``
    (no wait when bound is None)."""
    keys = [f"state:{j}" for j in range(workers)] + [f"clock:{j}" for j in range(workers)]
    deadline = time.monotonic() + timeout_s
    next_check = time.monotonic() + ABORT_CHECK_S
    sleep = 2e-4
    while True:
        found = store.get_many(keys)
        states, clock_keys = found[:workers], found[workers:]
        clocks = [max(_clock(s), _clock(c)) for s, c in zip(states, clock_keys, strict=True)]
        if bound is None or min(clocks) >= r - bound:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"SSP: worker {w} at round {r} waited {timeout_s:g} s; clocks {clocks}")
        if time.monotonic() > next_check:
            _check_abort(store)
            next_check += ABORT_CHECK_S
        time.sleep(sleep)
        sleep = min(0.01, sleep * 1.5)
    parts = [s[1:] for j, s in enumerate(states) if j != w and s is not None]
    return _sum_in_order(parts, f"read at round {r}") if parts else np.zeros(size)


def _clock(value: np.ndarray | None) -> int:
    return 0 if value is None else int(value[0])


def _result(
    w: int, start: int, t_compute: float, t_sync: float, model: Any, metrics: Any, **extra: Any
) -> dict[str, Any]:
    """What a worker returns at the end of a job (worker 0 also returns the model)."""
    out: dict[str, Any] = {
        "worker": w,
        "resumed_from": start,
        "compute_s": t_compute,
        "sync_s": t_sync,
        **extra,
        "metrics": metrics,
    }
    if w == 0:
        out["model"] = model
    return out
