"""Engines: adapters that run Shoal's work on existing distributed systems (Ray, Lithops' serverless back ends).

Every engine has the shape of :class:`Engine`: it runs a Python function with arguments somewhere and hands back a
``concurrent.futures.Future``. Shoal never forks or re-implements an engine; each adapter is the one place that
calls it (see docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

__all__ = ["Engine"]


@runtime_checkable
class Engine(Protocol):
    """Where the executor's function calls run."""

    #: ``local``, ``threads``, ``lithops``, ``ray``.
    name: str
    #: Whether a call's arguments and state stores in this process's memory reach the function (threads only).
    shares_memory: bool

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]: ...

    def submit_many(
        self, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Future[Any]]:
        """Start every call at once (a map): BSP workers must all run together."""
        ...

    def cost(self) -> dict[str, Any] | None:
        """What the calls so far cost, where the engine meters them (the embedded runtime does); else None."""
        ...

    def resize(self, workers: int) -> list[str]:
        """From now on at most ``workers`` calls run at once: release what is held for the others (the auto-tuner
        scaled in). Returns the ids of what was released (instances), empty where the engine holds nothing."""
        ...

    def close(self) -> None: ...
