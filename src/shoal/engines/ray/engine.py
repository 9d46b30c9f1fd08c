"""Run the executor's calls as Ray tasks, each reserving the worker's cores (``num_cpus``) as Ray resources.

``config`` keys: ``address`` (a running cluster, e.g. ``ray://head:10001`` or ``auto``; default: start a local Ray
that this engine shuts down on close) and ``num_cpus`` (of that local Ray; default: enough for every worker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from shoal.engines.billing import CallMeter, timed_call

__all__ = ["RayEngine"]


class RayEngine:
    name = "ray"
    shares_memory = False

    def __init__(
        self, config: dict[str, Any] | None = None, workers: int = 8, cores: float = 1.0, memory_mb: int = 1024
    ) -> None:
        import ray

        cfg = dict(config or {})
        self._ray = ray
        self.cores = cores
        self.memory_mb = memory_mb
        self._owns = not ray.is_initialized()
        if self._owns:
            address = cfg.get("address")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                num_cpus = int(cfg.get("num_cpus", max(1, round(workers * cores))))
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        self._remote = ray.remote(num_cpus=cores, max_retries=0)(timed_call)
        self.meter = CallMeter(cores, memory_mb)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        inner = self._remote.remote(fn, tuple(args), dict(kwargs)).future()
        out: Future[Any] = Future()

        def done(f: Future[Any]) -> None:
            err = f.exception()
            if err is not None:
                out.set_exception(err)
                return
            r = f.result()
            self.meter.add(r["seconds"])
            out.set_result(r["result"])

        inner.add_done_callback(done)
        return out

    def submit_many(
        self, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Future[Any]]:
        return [self.submit(fn, a, k) for a, k in calls]

    def cost(self) -> dict[str, Any] | None:
        """Billed call-seconds x the calls' resources at Shoal's prices (:mod:`shoal.engines.billing`)."""
        return self.meter.cost()

    def resize(self, workers: int) -> list[str]:
        return []  # a Ray task holds its cores only while it runs

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
