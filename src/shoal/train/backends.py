"""The executor's built-in back ends: Shoal functions on the embedded runtime (``local``), and threads (``threads``).

``local`` runs each call as one invocation of a Shoal function: a one-stage application whose stage calls the user's
function, served by :func:`shoal.local` with ``max_instances`` = the number of workers and ``vcpu`` = the cores per
worker. Calls are therefore instances forked from the zygote, placed on cores, metered and billed like any function.
Arguments and results travel through the data plane (msgpack, arrays in shared memory): nothing is pickled, so they
must be plain data (dicts, lists, numbers, strings, NumPy arrays).

The zygote holds the functions that existed when it was forked. A call of a function the running runtime does not
know restarts it (when nothing is in flight); a training job uses one function, so it starts the runtime once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from shoal.app import App, FunctionConfig, Plan

__all__ = ["LocalEngine", "ThreadEngine"]

#: Functions the local engine can call, by id. Copied into the zygote when the runtime starts (fork).
_FUNCTIONS: dict[str, Callable[..., Any]] = {}
_ids = itertools.count()


def _dispatch(task: dict[str, Any]) -> Any:
    fn = _FUNCTIONS[task["fn"]]
    return fn(*task["args"], **task["kwargs"])


class ThreadEngine:
    """Calls run on threads of this process: no isolation and no metering, but they share its memory."""

    name = "threads"
    shares_memory = True

    def __init__(self, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="shoal-worker")

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        return self._pool.submit(fn, *args, **kwargs)

    def submit_many(
        self, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Future[Any]]:
        return [self.submit(fn, a, k) for a, k in calls]

    def cost(self) -> dict[str, Any] | None:
        return None

    def resize(self, workers: int) -> list[str]:
        return []  # threads of this process: nothing is held per worker

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class LocalEngine:
    """Calls run as invocations of a Shoal function on the embedded runtime."""

    name = "local"
    shares_memory = False

    def __init__(
        self, workers: int = 8, cores: float = 1.0, memory_mb: int = 1024, timeout_s: float = 3600.0, app: str = "train"
    ) -> None:
        self.workers, self.cores, self.memory_mb = workers, cores, memory_mb
        self.timeout_s, self.app_name = timeout_s, app
        self._known: dict[Callable[..., Any], str] = {}
        self._cm: contextlib.AbstractContextManager[Any] | None = None
        self.service: Any = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._past_costs: list[dict[str, Any]] = []

    def _ensure(self, fn: Callable[..., Any]) -> str:
        fid = self._known.get(fn)
        if fid is not None and self.service is not None:
            return fid
        if fid is None:
            fid = self._known[fn] = f"f{next(_ids)}"
            _FUNCTIONS[fid] = fn
        with self._lock:
            if self._in_flight:
                raise RuntimeError("cannot call a new function while calls of another are in flight; wait for them")
        self._stop()
        self._start()
        return fid

    def _start(self) -> None:
        from shoal.runtime.local import local

        app = App(self.app_name)
        app.stage(_dispatch, name="worker", vcpu=self.cores, memory_mb=self.memory_mb)
        # Workers are gang-scheduled (BSP workers wait for each other), so all W instances are reserved up front:
        # scale-out limited by CPU capacity would otherwise leave some queued behind a barrier.
        cfg = FunctionConfig(
            min_instances=self.workers,
            max_instances=self.workers,
            timeout_s=self.timeout_s,
            queue_limit=max(256, self.workers),
        )
        self._cm = local(app, Plan.coarse(app, default=cfg))
        self.service = self._cm.__enter__()

    def _stop(self) -> None:
        if self._cm is not None:
            with contextlib.suppress(Exception):
                self._past_costs.append(self._meter())
            self._cm.__exit__(None, None, None)
        self._cm = self.service = None

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        fid = self._ensure(fn)
        out: Future[Any] = Future()
        with self._lock:
            self._in_flight += 1
        inner = self.service.submit({"fn": fid, "args": list(args), "kwargs": kwargs})

        def done(f: Future[Any]) -> None:
            with self._lock:
                self._in_flight -= 1
            err = f.exception()
            if err is not None:
                out.set_exception(err)
            else:
                out.set_result(f.result().output)

        inner.add_done_callback(done)
        return out

    def submit_many(
        self, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Future[Any]]:
        return [self.submit(fn, a, k) for a, k in calls]

    def _meter(self) -> dict[str, Any]:
        meter = self.service.status()["meter"]
        return {"user_bill": meter["user_bill"]["total"], "resource_cost": meter["resource_cost"]["total"]}

    def cost(self) -> dict[str, Any] | None:
        parts = list(self._past_costs)
        if self.service is not None:
            parts.append(self._meter())
        if not parts:
            return None
        return {
            kind: {k: sum(p[kind][k] for p in parts) for k in parts[0][kind]} for kind in ("user_bill", "resource_cost")
        }

    def resize(self, workers: int) -> list[str]:
        """Reserve ``workers`` instances from now on, and retire the idle ones above that at once (the auto-tuner
        removed a worker: without this the runtime would keep its instance warm, billed as resource cost, until the
        job ends). Returns the retired instance ids."""
        self.workers = workers
        if self.service is None:
            return []

        async def go() -> list[str]:
            pools = [p for d in self.service.host.deployments.values() for p in d.pools.values()]
            return [iid for p in pools for iid in p.resize(workers, workers)]

        return list(asyncio.run_coroutine_threadsafe(go(), self.service.loop).result(30))

    def instance_pids(self) -> list[int]:
        """Process ids of the running worker instances (for fault tests and tools)."""
        if self.service is None:
            return []
        fns = self.service.status()["apps"][0]["functions"]
        return [i["pid"] for f in fns for i in f["instances"] if i["pid"]]

    def close(self) -> None:
        self._stop()
