"""Run the executor's calls as Ray tasks, each reserving the worker's cores (``num_cpus``) as Ray resources.

``config`` keys: ``address`` (a running cluster, e.g. ``ray://head:10001`` or ``auto``; default: start a local Ray
that this engine shuts down on close) and ``num_cpus`` (of that local Ray; default: enough for every worker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

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
        self._remotes: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(num_cpus=self.cores, max_retries=0)(fn)
        return remote.remote(*args, **kwargs).future()  # type: ignore[no-any-return]

    def submit_many(
        self, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Future[Any]]:
        return [self.submit(fn, a, k) for a, k in calls]

    def cost(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
