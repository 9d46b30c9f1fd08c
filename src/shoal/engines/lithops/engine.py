"""Run the executor's calls through ``lithops.FunctionExecutor``.

The configuration is Lithops' own dictionary, passed through untouched; without one, the engine uses Lithops'
``localhost`` back end with this interpreter as the runtime (:func:`localhost_config`), which is what CI runs.
Lithops serialises functions and arguments with its own machinery (cloudpickle); Shoal's data never needs it, since
workers read their data from files and their state from the store.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from shoal.engines.billing import CallMeter, timed_call

__all__ = ["LithopsEngine", "localhost_config"]


def localhost_config(worker_processes: int) -> dict[str, Any]:
    """Lithops' localhost back end, running calls with this interpreter, ``worker_processes`` at a time."""
    return {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": "WARNING"},
        "localhost": {"runtime": sys.executable, "worker_processes": worker_processes},
    }


class LithopsEngine:
    name = "lithops"
    shares_memory = False

    def __init__(
        self, config: dict[str, Any] | None = None, workers: int = 8, cores: float = 1.0, memory_mb: int = 1024
    ) -> None:
        import lithops

        cfg = copy.deepcopy(config) if config is not None else localhost_config(max(1, workers))
        self.config = cfg
        self.cores = cores
        # log_level=None: a library leaves logging set-up to its application (and Lithops would open a handler).
        self._fexec = lithops.FunctionExecutor(config=cfg, runtime_memory=memory_mb, log_level=None)
        self._threads: list[threading.Thread] = []
        self.meter = CallMeter(cores, memory_mb)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        return self.submit_many(fn, [(args, kwargs)])[0]

    def submit_many(
        self, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Future[Any]]:
        """One Lithops ``map`` for all the calls, so that they run at once (BSP workers must)."""
        iterdata = []
        for args, kwargs in calls:
            iterdata.append((fn, tuple(args), dict(kwargs)))  # each call timed inside, for the cost report
        lfs = (self._fexec.map(timed_call, iterdata) if len(iterdata) > 1
               else [self._fexec.call_async(timed_call, iterdata[0])])  # fmt: skip
        outs: list[Future[Any]] = [Future() for _ in lfs]

        def collect() -> None:
            try:
                results = self._fexec.get_result(lfs)
                results = results if len(lfs) > 1 else [results]
            except BaseException as e:  # a call raised: fail every future of this map
                for o in outs:
                    o.set_exception(e)
                return
            for o, r in zip(outs, results, strict=True):
                self.meter.add(r["seconds"])
                o.set_result(r["result"])

        t = threading.Thread(target=collect, name="shoal-lithops-collect", daemon=True)
        t.start()
        self._threads.append(t)
        return outs

    def cost(self) -> dict[str, Any] | None:
        """Billed call-seconds x the calls' resources at Shoal's prices (:mod:`shoal.engines.billing`)."""
        return self.meter.cost()

    def resize(self, workers: int) -> list[str]:
        return []  # a Lithops call holds nothing once it returns

    def close(self) -> None:
        for t in self._threads:
            t.join(timeout=60)
        self._fexec.clean(clean_cloudobjects=False)
