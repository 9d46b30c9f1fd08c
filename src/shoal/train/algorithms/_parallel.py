"""Intra-function parallelism: C threads (default) or C processes over row blocks of a shard.

An algorithm's per-round work is a sum over row blocks of a *block kernel* ``algo.block_fn(kind, model)(xb, yb)``.
Rows go in blocks of ``algo.block_rows`` whatever C is, and block results are summed in block order, so the result
is the same bit for bit for every C and for threads and processes alike.

- Threads (:func:`block_sum`): NumPy's matrix products release the GIL, so threads over row blocks use C cores
  without the cost of processes. BLAS is held to one thread meanwhile (``threadpoolctl``), so C threads mean C
  cores, not C times the BLAS pool. Element-wise ufuncs and ``argmax`` release it too, but every NumPy call takes it
  to start, so kernels made of many short calls scale poorly on threads.
- Processes (:class:`ProcessCores`, ``parallel="processes"``): C - 1 forked helpers plus the calling process share
  the shard through ``multiprocessing.shared_memory`` (no copy per round); each round the model goes to the helpers
  as raw float64 bytes over a local pipe (nothing is pickled), each writes its blocks' results into a shared result
  array, and the caller sums them in block order.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

_BLAS: ThreadpoolController | None = None


def one_blas_thread() -> Any:
    """A context in which BLAS uses one thread (the controller is found once: 0.01 ms a call instead of 0.2)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


__all__ = ["BLOCK_ROWS", "PARALLEL", "BlockAlgorithm", "ProcessCores", "block_sum", "one_blas_thread", "run_blocks"]

#: Default rows per block: the temporaries of a block stay in cache (see each algorithm's ``block_rows``).
BLOCK_ROWS = 4096
#: How a worker uses its C cores.
PARALLEL = ("threads", "processes")

BlockFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


class BlockAlgorithm(Protocol):
    name: str
    block_rows: int

    def block_fn(self, kind: str, model: np.ndarray) -> BlockFn: ...


def _starts(n: int, rows: int) -> range:
    return range(0, max(n, 1), rows)


def block_sum(fn: BlockFn, X: np.ndarray, y: np.ndarray | None, cores: int, rows: int = BLOCK_ROWS) -> np.ndarray:
    """``sum(fn(X[b], y[b]) for b in blocks)`` over blocks of ``rows`` rows, on ``cores`` threads."""
    starts = _starts(len(X), rows)

    def one(a: int) -> np.ndarray:
        b = a + rows
        return fn(X[a:b], None if y is None else y[a:b])

    if cores <= 1 or len(starts) == 1:
        parts = [one(a) for a in starts]
    else:
        with one_blas_thread(), ThreadPoolExecutor(min(cores, len(starts)), thread_name_prefix="shoal-core") as pool:
            parts = list(pool.map(one, starts))
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


def run_blocks(
    algo: BlockAlgorithm, kind: str, model: np.ndarray, X: np.ndarray, y: np.ndarray | None, cores: int | ProcessCores
) -> np.ndarray:
    """The block sum of ``algo``'s ``kind`` kernel at ``model``: on the process pool when ``cores`` is one and it
    holds ``X`` (the worker's shard), else on ``int(cores)`` threads (mini-batches, callers without a pool)."""
    if isinstance(cores, ProcessCores):
        if cores.holds(X):
            return cores.run(kind, model)
        cores = cores.cores
    return block_sum(algo.block_fn(kind, model), X, y, cores, algo.block_rows)


def _share(a: np.ndarray) -> tuple[SharedMemory, np.ndarray]:
    shm = SharedMemory(create=True, size=max(a.nbytes, 1))
    view: np.ndarray = np.ndarray(a.shape, dtype=a.dtype, buffer=shm.buf)
    view[...] = a
    return shm, view


def _helper(conn: Connection, algo: BlockAlgorithm, X: np.ndarray, y: np.ndarray | None, out: np.ndarray,
            mine: list[int], starts: list[int]) -> None:  # fmt: skip
    """A helper process: per request (kind, raw model bytes), its blocks' results into ``out``; then b"ok"."""
    # No threadpoolctl here: it would take OpenBLAS's server lock, which another thread of the parent may have held
    # at the fork. The parent forks inside ``one_blas_thread()``, so BLAS is at one thread in here already.
    rows = algo.block_rows
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            return
        if not msg:
            return
        kind, raw = msg.split(b"\0", 1)
        fn = algo.block_fn(kind.decode(), np.frombuffer(raw, dtype=np.float64).copy())
        for i in mine:
            a = starts[i]
            res = fn(X[a : a + rows], None if y is None else y[a : a + rows])
            out[i, : len(res)] = res
        conn.send_bytes(b"ok")


class ProcessCores:
    """C processes over one shard for the life of a worker: ``run(kind, model)`` is :func:`block_sum` on them.

    The shard and a result array live in shared memory; the helpers are forked (Linux), so they inherit the
    algorithm object, not a pickle of it. Use as a context manager, or call :meth:`close`.

    Fork copies only the calling thread: a lock another thread holds at that moment (OpenBLAS's, threadpoolctl's)
    stays locked in the helper for ever. So the caller must be alone in its process with NumPy: a worker in its
    own instance (the local, Lithops and Ray back ends), not one of several worker threads (``train`` refuses
    processes on the threads back end; a test hung here before it did).
    """

    def __init__(self, algo: BlockAlgorithm, X: np.ndarray, y: np.ndarray | None, cores: int, width: int) -> None:
        if cores < 2:
            raise ValueError("ProcessCores needs cores >= 2 (one core needs no helpers)")
        self._pid = os.getpid()
        self._shms: list[SharedMemory] = []
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self.algo, self.cores = algo, cores
        shm, self.X = _share(np.ascontiguousarray(X))
        self._shms.append(shm)
        self.y: np.ndarray | None = None
        if y is not None:
            shm, self.y = _share(np.ascontiguousarray(y))
            self._shms.append(shm)
        self.starts = list(_starts(len(self.X), algo.block_rows))
        shm, self.out = _share(np.zeros((len(self.starts), width)))
        self._shms.append(shm)
        # Contiguous runs of blocks: the caller takes the first share, helper h the (h + 1)-th.
        shares = np.array_split(np.arange(len(self.starts)), cores)
        self._mine = [int(i) for i in shares[0]]
        ctx = mp.get_context("fork")
        with one_blas_thread():  # inherited by the helpers (see _helper)
            self._fork(ctx, shares)

    def _fork(self, ctx: Any, shares: list[np.ndarray]) -> None:
        for h in range(1, self.cores):
            parent, child = ctx.Pipe()
            mine = [int(i) for i in shares[h]]
            args = (child, self.algo, self.X, self.y, self.out, mine, self.starts)
            p = ctx.Process(target=_helper, args=args, daemon=True, name=f"shoal-core-{h}")
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)

    def holds(self, X: np.ndarray) -> bool:
        return X is self.X

    def run(self, kind: str, model: np.ndarray) -> np.ndarray:
        msg = kind.encode() + b"\0" + np.ascontiguousarray(model, dtype=np.float64).tobytes()
        for c in self._conns:
            c.send_bytes(msg)
        rows = self.algo.block_rows
        with one_blas_thread():
            fn = self.algo.block_fn(kind, model)
            width = 0
            for i in self._mine:
                a = self.starts[i]
                res = fn(self.X[a : a + rows], None if self.y is None else self.y[a : a + rows])
                self.out[i, : len(res)] = res
                width = len(res)
        for c, p in zip(self._conns, self._procs, strict=True):
            if c.recv_bytes() != b"ok":
                raise RuntimeError(f"core process {p.name} failed")
        total = self.out[0, :width].copy()
        for i in range(1, len(self.starts)):
            total += self.out[i, :width]
        return total

    def close(self) -> None:
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.send_bytes(b"")
            c.close()
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        self._conns, self._procs = [], []
        for shm in self._shms:
            shm.close()
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
        self._shms = []

    def __enter__(self) -> ProcessCores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten pool must not leave /dev/shm segments behind
        if getattr(self, "_shms", None) and os.getpid() == self._pid:
            self.close()


def with_constant_column(owner: object, X: np.ndarray, n_features: int, value: float, cache: bool) -> np.ndarray:
    """``X`` with a column of ``value`` appended (float64, C order), as both kernels read their shard. Idempotent:
    an already augmented shard comes back as is. With ``cache`` the result is kept on ``owner`` for a caller that
    passes the same raw array every round (benchmarks, notebooks)."""
    if X.ndim == 2 and X.shape[1] == n_features + 1:
        return X
    cached = owner.__dict__.get("_prepared")
    if cached is not None and cached[0] is X:
        prepared: np.ndarray = cached[1]
        return prepared
    out = np.empty((len(X), n_features + 1))
    out[:, :-1] = X
    out[:, -1] = value
    if cache:
        owner.__dict__["_prepared"] = (X, out)
    return out
