"""``shoal.local``: the embedded runtime in a background thread, for tests, notebooks and scripts.

It runs the same machinery as ``shoal serve`` (zygote, pools, instances, data plane, meter) without the HTTP layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from shoal.app import App, Plan
from shoal.policy.forecast import Lookahead
from shoal.policy.granularity import Candidate, GranularityController
from shoal.policy.served import ServedCosts
from shoal.runtime.adaptive import AdaptiveLoop, ObservedLoad
from shoal.runtime.arrival_log import ArrivalLog
from shoal.runtime.host import Host, HostConfig
from shoal.runtime.orchestrator import Result, invoke

__all__ = ["LocalService", "local"]


class LocalService:
    """A running embedded runtime. Use :func:`local` to make one."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="shoal-local", daemon=True)

    def _start(self) -> None:
        self.host.prepare()  # fork the zygote while this process has no extra thread
        self._thread.start()
        self._run(self.host.start())

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def invoke(self, x: Any, app: str | None = None, timeout: float | None = None) -> Any:
        """Run one request and return the application's output."""
        return self.call(x, app, timeout).output

    def call(self, x: Any, app: str | None = None, timeout: float | None = None) -> Result:
        """Run one request and return its :class:`Result` (output, request id and timing breakdown)."""
        return self._run(invoke(self.host, app or self._only_app(), x), timeout)

    def submit(self, x: Any, app: str | None = None) -> Future[Result]:
        """Start a request without waiting; returns a concurrent.futures.Future of its :class:`Result`."""
        return asyncio.run_coroutine_threadsafe(invoke(self.host, app or self._only_app(), x), self.loop)

    def switch_plan(
        self,
        plan: Plan | str,
        app: str | None = None,
        warm: dict[str, int] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Serve the app under ``plan`` from now on, live: no request is lost or failed (``Host.switch_plan``)."""
        name = app or self._only_app()
        current = self.host.deployment(name)
        if isinstance(plan, str):
            plan = Plan.parse(current.app, plan, default=current.plan.default)
        return self._run(self.host.switch_plan(name, plan, warm), timeout)

    def adapt(
        self,
        plans: Sequence[Plan | str],
        candidates_for: Callable[[ObservedLoad, Mapping[str, Plan]], Sequence[Candidate]],
        controller: GranularityController | None = None,
        window_s: float = 10.0,
        app: str | None = None,
        resolve: Callable[[str], Plan] | None = None,
        horizon_s: float | None = None,
        horizon_as: str = "mix",
        emergency_s: float | None = None,
        expected_burst: float | None = None,
        expected_rate: float | None = None,
        lookahead: Lookahead | None = None,
        switch_overlap_s: float = 2.0,
        arrival_log: ArrivalLog | None = None,
        served: ServedCosts | None = None,
    ) -> AdaptiveLoop:
        """Adapt the app's granularity while it serves: every ``window_s``, weigh ``candidates_for(load, plans)``
        with the controller (over the last ``horizon_s``, if given: the windows' mix, or with ``horizon_as="load"``
        the horizon's arrivals as one load) and switch live (``shoal.runtime.adaptive``); with ``emergency_s``, also
        look for SLO emergencies that often between windows; with ``expected_rate`` / ``expected_burst`` (load
        mode), price the first horizon at that rate / as that bursty until it has been seen (``Horizon``); with
        ``lookahead``, plan ahead of bursts whose onsets repeat (``policy.forecast.Lookahead``);
        ``switch_overlap_s``: what a switch is first priced at (then the longest one made); with ``arrival_log``,
        keep the look-back's arrivals in a file and start from those logged before (``runtime.arrival_log``); with
        ``served``, price plans by what they cost where they served and try close calls (``policy.served``).
        Returns the loop; its ``history`` says what it saw and did."""
        name = app or self._only_app()
        dep = self.host.deployment(name)
        resolved = [p if isinstance(p, Plan) else Plan.parse(dep.app, p, default=dep.plan.default) for p in plans]
        loop = AdaptiveLoop(
            self.host,
            name,
            resolved,
            candidates_for,
            controller,
            window_s,
            resolve=resolve,
            horizon_s=horizon_s,
            horizon_as=horizon_as,
            emergency_s=emergency_s,
            expected_burst=expected_burst,
            expected_rate=expected_rate,
            lookahead=lookahead,
            switch_overlap_s=switch_overlap_s,
            arrival_log=arrival_log,
            served=served,
        )

        async def begin() -> None:
            self.host.adapt(loop)

        self._run(begin())
        return loop

    def status(self) -> dict[str, Any]:
        async def snap() -> dict[str, Any]:
            return self.host.status()

        return self._run(snap())

    def _only_app(self) -> str:
        if len(self.host.deployments) != 1:
            raise ValueError(f"several apps are deployed ({', '.join(self.host.deployments)}): pass app=")
        return next(iter(self.host.deployments))

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._run(self.host.stop(), timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
        self.loop.close()


@contextlib.contextmanager
def local(
    app: App | Sequence[tuple[App, Plan | str]],
    plan: Plan | str = "coarse",
    config: HostConfig | None = None,
) -> Iterator[LocalService]:
    """Serve ``app`` under ``plan`` on this machine for the duration of a ``with`` block.

    >>> with shoal.local(app, "fine") as svc:  # doctest: +SKIP
    ...     svc.invoke(x)
    """
    pairs = [(app, plan)] if isinstance(app, App) else list(app)
    deployments = [(a, p if isinstance(p, Plan) else Plan.parse(a, p)) for a, p in pairs]
    svc = LocalService(Host(deployments, config))
    try:
        svc._start()
        yield svc
    finally:
        svc.close()
