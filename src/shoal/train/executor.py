"""A Lithops-compatible executor: ``call_async``, ``map``, ``map_reduce``, ``wait``, ``get_result``.

Code written for ``lithops.FunctionExecutor`` runs unchanged against :class:`FunctionExecutor`; the back end decides
where the calls run:

- ``local`` (default): Shoal functions on the embedded runtime (instances forked from the zygote, metered, billed);
- ``threads``: threads of this process (tests, notebooks; the only back end that reaches a ``LocalStore``);
- ``lithops``: any Lithops back end (``config=`` is Lithops' own configuration dict);
- ``ray``: a local or remote Ray cluster (``config={"address": ...}``).

As in Lithops, an element of ``iterdata`` that is a dict is passed as keyword arguments, a tuple or list as
positional arguments, and anything else as the one argument.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shoal.engines import Engine

__all__ = ["ALL_COMPLETED", "ALWAYS", "ANY_COMPLETED", "BACKENDS", "FunctionExecutor", "ResponseFuture", "make_engine"]

ALL_COMPLETED = 1  # Lithops' constants, same values
ANY_COMPLETED = 2
ALWAYS = 3

BACKENDS = ("local", "threads", "lithops", "ray")


class ResponseFuture:
    """One call's future, as in Lithops: ``result()``, ``done``, ``error``."""

    def __init__(self, fut: cf.Future[Any], call_id: int) -> None:
        self._fut = fut
        self.call_id = call_id

    @property
    def done(self) -> bool:
        return self._fut.done()

    @property
    def success(self) -> bool:
        return self._fut.done() and self._fut.exception() is None

    @property
    def error(self) -> bool:
        return self._fut.done() and self._fut.exception() is not None

    def result(self, timeout: float | None = None) -> Any:
        return self._fut.result(timeout)

    def __repr__(self) -> str:
        return f"ResponseFuture(call_id={self.call_id}, done={self.done})"


def make_engine(
    backend: str, workers: int = 8, cores: float = 1.0, memory_mb: int = 1024, config: dict[str, Any] | None = None
) -> Engine:
    """The engine for ``backend``; ``config`` is the engine's own configuration (Lithops' dict, Ray's address)."""
    if backend == "local":
        from shoal.train.backends import LocalEngine

        return LocalEngine(workers=workers, cores=cores, memory_mb=memory_mb)
    if backend == "threads":
        from shoal.train.backends import ThreadEngine

        return ThreadEngine(workers=workers)
    if backend == "lithops":
        from shoal.engines.lithops import LithopsEngine

        return LithopsEngine(config=config, workers=workers, cores=cores, memory_mb=memory_mb)
    if backend == "ray":
        from shoal.engines.ray import RayEngine

        return RayEngine(config=config, workers=workers, cores=cores, memory_mb=memory_mb)
    raise ValueError(f"unknown back end {backend!r}: use one of {', '.join(BACKENDS)}")


def _call_args(item: Any, extra_args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(item, dict):
        kwargs = dict(item)
        if isinstance(extra_args, dict):
            kwargs.update(extra_args)
        return (), kwargs
    args = tuple(item) if isinstance(item, (tuple, list)) else (item,)
    if extra_args is not None:
        args += tuple(extra_args) if isinstance(extra_args, (tuple, list)) else (extra_args,)
    return args, {}


class FunctionExecutor:
    """Run functions on a back end; see the module's description."""

    def __init__(
        self,
        backend: str | Engine = "local",
        *,
        workers: int = 8,
        cores: float = 1.0,
        memory_mb: int = 1024,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.engine: Engine = (
            make_engine(backend, workers, cores, memory_mb, config) if isinstance(backend, str) else backend
        )
        self.futures: list[ResponseFuture] = []
        self._next = 0

    # -- submitting -----------------------------------------------------------------------------------------------
    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> ResponseFuture:
        f = ResponseFuture(self.engine.submit(fn, args, kwargs), self._next)
        self._next += 1
        self.futures.append(f)
        return f

    def call_async(self, func: Callable[..., Any], data: Any = None, extra_args: Any = None) -> ResponseFuture:
        """Run ``func`` once (``data`` spread as for one element of ``map``'s iterdata; None: no arguments)."""
        args, kwargs = _call_args(data, extra_args) if data is not None else ((), {})
        return self._submit(func, args, kwargs)

    def map(
        self, map_function: Callable[..., Any], map_iterdata: Iterable[Any], extra_args: Any = None
    ) -> list[ResponseFuture]:
        """Run ``map_function`` once per element of ``map_iterdata``, all at once."""
        calls = [_call_args(item, extra_args) for item in map_iterdata]
        fs = [ResponseFuture(f, self._next + i) for i, f in enumerate(self.engine.submit_many(map_function, calls))]
        self._next += len(fs)
        self.futures.extend(fs)
        return fs

    def map_reduce(
        self,
        map_function: Callable[..., Any],
        map_iterdata: Iterable[Any],
        reduce_function: Callable[[list[Any]], Any],
        extra_args: Any = None,
    ) -> ResponseFuture:
        """``map``, then ``reduce_function(results)`` once every map call is done (it runs on the back end too)."""
        fs = self.map(map_function, map_iterdata, extra_args)
        results = [f.result() for f in fs]
        return self._submit(reduce_function, (results,), {})

    # -- collecting -----------------------------------------------------------------------------------------------
    def wait(
        self,
        fs: ResponseFuture | Sequence[ResponseFuture] | None = None,
        return_when: int = ALL_COMPLETED,
        timeout: float | None = None,
    ) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
        """Wait for ``fs`` (default: every call so far); returns ``(done, not_done)``."""
        fs = self.futures if fs is None else ([fs] if isinstance(fs, ResponseFuture) else list(fs))
        if return_when != ALWAYS and fs:
            when = cf.ALL_COMPLETED if return_when == ALL_COMPLETED else cf.FIRST_COMPLETED
            cf.wait([f._fut for f in fs], timeout=timeout, return_when=when)
        return [f for f in fs if f.done], [f for f in fs if not f.done]

    def get_result(
        self, fs: ResponseFuture | Sequence[ResponseFuture] | None = None, timeout: float | None = None
    ) -> Any:
        """The results of ``fs`` (default: every call so far) in call order; one future gives one result."""
        if isinstance(fs, ResponseFuture):
            return fs.result(timeout)
        return [f.result(timeout) for f in (self.futures if fs is None else fs)]

    def cost(self) -> dict[str, Any] | None:
        return self.engine.cost()

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> FunctionExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
