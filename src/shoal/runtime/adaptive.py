"""Adaptive granularity on the running runtime: measure the load in windows, weigh candidate plans, switch live.

Every ``window_s`` the loop measures the application's arrivals over the last window (``ObservedLoad``: rate and
burstiness), asks ``candidates_for`` (the planner with its predictor, or any function of the load) for candidate
plans with their predicted SLO hit rate and cost, lets the pure ``GranularityController`` decide, and carries a
switch out with ``Host.switch_plan`` (warm, move, drain: no request lost). The candidates are computed in a worker
thread, so a slow predictor never stalls the event loop that serves requests.

A candidate that comes without a switch cost is given one (``policy.granularity.priced``): its cost per second over
``switch_overlap_s``, which starts at 2 s and then is the longest switch this loop has made.

With ``horizon_s`` longer than a window, the controller weighs each plan over the horizon (``policy.granularity.
Horizon``), while an SLO emergency at this window's load is still answered at once: with ``horizon_as="mix"`` over
the loads of the windows within it (their candidates are kept, not recomputed), with ``"load"`` at the horizon's
arrivals observed as one load (a second ``candidates_for`` call per window), for a predictor that prices burstiness.

With ``emergency_s``, the loop also looks every ``emergency_s`` between windows for an SLO emergency alone
(``GranularityController.emergency``): a burst is answered seconds after it begins, not when its window ends.

With ``lookahead`` (``policy.forecast.Lookahead``), while the arrivals repeat with a period, each window's plan is
the first step of the cheapest schedule over the forecast period's windows, a warm-up ahead, so that the burst plan
is warm when a burst begins and the quiet plan serves between bursts; no horizon is weighed then (its burst pricing
holds the burst plan through the quiet, which a forecast makes unnecessary), and emergency checks read the load
forecast until the next check. With ``Lookahead(metered=True)``, staying on the current plan is priced at what its
live instances cost now, once it has served a window since its switch (before, the meter reads the warm-up), where
an onset's overshoot makes that dearer than the table says (``Lookahead.decide``).

With ``arrival_log`` (``runtime.arrival_log.ArrivalLog``), the arrivals of the loop's look-back (the forecast's, the
horizon's, or a window) are written to a file every window and when the loop stops, and read back when it starts:
a restarted server forecasts from the traffic it served before, not from nothing, and its horizon reads that traffic
from the first window (``Horizon.resume``). With ``served``, the meter's state is kept in the same file
(``ServedCosts.state``: what each plan cost and served, the trials made, the error budget). The time it was down is
not read as time without traffic: the log keeps the spans it did not observe, and the loop's readings (window,
horizon, forecast) leave them out (``policy.arrivals``).

With ``served`` (``policy.served.ServedCosts``), each window the current plan served whole, a window after its
switch, is metered (``Host.spent``) against the price the predictor gave it; plans metered near the load now are
priced at the table's price times that ratio, and where another plan that meets the target is priced within a few
percent of what the current one is metered to cost, the loop tries it until it has been metered as long, and goes
back if it costs more (the table's error can be larger than the margin the controller needs to move). With
``ServedCosts(slo_trials=True)``, what each plan served within the SLO (``Host.outcomes``) corrects its predicted
SLO hit too, and a plan the table calls just short of the target is tried within an error budget. Not while a
forecast plans the windows.

Every window is kept in ``history`` (time, load, best plan, decision and why), for ``shoal status`` and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shoal.app import Plan
from shoal.policy.arrivals import merged_unseen
from shoal.policy.forecast import Lookahead
from shoal.policy.granularity import (
    Candidate,
    GranularityController,
    GranularityDecision,
    Horizon,
    ObservedLoad,
    checks_per_window,
    emergency_span_s,
    observe_load,
    unscored_record,
    window_record,
)
from shoal.policy.served import ServedCosts, react_window
from shoal.runtime.arrival_log import ArrivalLog, ArrivalLogError

if TYPE_CHECKING:
    from shoal.runtime.host import Host

__all__ = ["AdaptiveLoop", "ObservedLoad", "observe_load"]  # the last two re-exported from policy.granularity

log = logging.getLogger("shoal.adaptive")


class AdaptiveLoop:
    """One application's adaptive granularity; ``start`` it on the host's event loop, ``stop`` it before the host."""

    def __init__(
        self,
        host: Host,
        app: str,
        plans: Sequence[Plan],
        candidates_for: Callable[[ObservedLoad, Mapping[str, Plan]], Sequence[Candidate]],
        controller: GranularityController | None = None,
        window_s: float = 10.0,
        keep: int = 1000,
        resolve: Callable[[str], Plan] | None = None,
        switch_overlap_s: float = 2.0,
        horizon_s: float | None = None,
        horizon_as: str = "mix",
        emergency_s: float | None = None,
        expected_burst: float | None = None,
        expected_rate: float | None = None,
        lookahead: Lookahead | None = None,
        arrival_log: ArrivalLog | None = None,
        served: ServedCosts | None = None,
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        #: Between windows, every this many seconds, look for an SLO emergency only (``checks_per_window``).
        self.checks = checks_per_window(window_s, emergency_s)
        self.host = host
        self.app = app
        self.plans = {p.label: p for p in plans}
        if host.deployment(app).plan.label not in self.plans:
            self.plans[host.deployment(app).plan.label] = host.deployment(app).plan
        self.candidates_for = candidates_for
        #: Turns a candidate's label into its plan when it is not in ``plans`` (a planner makes plans as it searches).
        self.resolve = resolve
        self.controller = controller or GranularityController()
        self.window_s = window_s
        self.switch_overlap_s = switch_overlap_s
        self.horizon = Horizon(
            horizon_s, window_s, horizon_as, expected_burst=expected_burst, expected_rate=expected_rate
        )
        self.keep = keep
        self.lookahead = lookahead
        self.arrival_log = arrival_log
        #: Arrivals kept in the log: the longest look-back the loop reads (forecast, horizon, or a window).
        self.keep_s = max(window_s, horizon_s or 0.0, lookahead.lookback_s if lookahead is not None else 0.0)
        self.history: list[dict[str, Any]] = []
        self.switches = 0
        self._task: asyncio.Task[None] | None = None
        self._log_failed = ""  # the last failure to write the arrival log, said once
        # what the loop has observed of its arrivals, on the host's clock: since when, and the spans it has not
        # (a restart's downtime, from the arrival log)
        self._since: float | None = None
        self._unseen: tuple[tuple[float, float], ...] = ()
        # when traffic last moved to a new plan: its meter reads its state only once it has served a window
        self._moved_at = -math.inf
        self.served = served

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"shoal-adaptive-{self.app}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._log_arrivals()

    async def _run(self) -> None:
        await self._restore_arrivals()
        while True:
            for k in range(self.checks):
                await asyncio.sleep(self.window_s / self.checks)
                try:
                    await (self.step() if k == self.checks - 1 else self.check_emergency())
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a failed window must not end adaptation: log it, keep the plan, try again
                    log.exception("adaptive granularity window of %s failed", self.app)
                    self._remember({"t": self.host.now(), "error": f"{type(e).__name__}: {e}"})
            await self._log_arrivals()

    async def _restore_arrivals(self) -> None:
        """Seed the host with the logged arrivals of the last ``keep_s``, if there is a log, and take what the log
        did not observe out of the loop's readings. An unreadable log is said in ``history`` and the log; the loop
        then starts from nothing and the next window replaces the file."""
        now = self.host.now()
        self._since = now
        if self.arrival_log is None:
            return
        log_ = self.arrival_log
        wall = time.time()
        try:
            before = await asyncio.to_thread(log_.read, now, self.keep_s, wall)
        except ArrivalLogError as e:
            log.warning("%s: %s", self.app, e)
            self._remember({"t": now, "error": str(e)})
            return
        self.host.seed_arrivals(self.app, before.times.tolist())
        if before.times.size:
            self._since, self._unseen = before.since, before.unseen
            self.horizon.resume(before.since)
        entry: dict[str, Any] = {
            "t": now,
            "restored_arrivals": int(before.times.size),
            "from": str(log_.path),
            "unseen_s": round(before.unseen_s, 3),
        }
        if self.served is not None and before.served is not None:
            try:
                entry["restored_served_windows"] = self.served.restore(before.served)
            except ValueError as e:  # the arrivals are good; the meter starts afresh
                log.warning("%s: %s in %s", self.app, e, log_.path)
                entry["error"] = f"{e} in {log_.path}: the meter starts afresh"
        self._remember(entry)

    async def _log_arrivals(self) -> None:
        """Write the arrivals of the last ``keep_s`` to the log (in a worker thread), with what the loop observed of
        them; a failure is logged, once per message, and adaptation goes on."""
        if self.arrival_log is None:
            return
        now, wall = self.host.now(), time.time()
        arrivals = self.host.arrivals_of(self.app)
        self._unseen = tuple(merged_unseen(self._unseen, now - self.keep_s, now))
        served = self.served.state() if self.served is not None else None
        try:
            await asyncio.to_thread(
                self.arrival_log.write, arrivals, now, self.keep_s, wall, self._since, self._unseen, served
            )
        except ArrivalLogError as e:
            if str(e) != self._log_failed:
                log.warning("%s: %s", self.app, e)
                self._remember({"t": now, "error": str(e)})
            self._log_failed = str(e)
        else:
            self._log_failed = ""

    async def check_emergency(self) -> dict[str, Any] | None:
        """Between windows: the load of the last ``emergency_span_s``, and a switch only if the current plan is in an
        SLO emergency there (``GranularityController.emergency``). Returns the entry kept for a switch, else None."""
        now = self.host.now()
        span = emergency_span_s(self.window_s, self.checks)
        load = observe_load(self.host.arrivals_of(self.app), now, span, unseen=self._unseen)
        current = self.host.deployment(self.app).plan.label
        seen = self._ahead(load, now, self.window_s / self.checks)
        cands = await asyncio.to_thread(self.candidates_for, self.horizon.window(seen), self.plans)
        if not cands:  # nothing could be scored at this load: no emergency can be judged either
            return None
        decision = self.controller.emergency(now, current, cands)
        if decision.switch_to is None:
            return None
        entry: dict[str, Any] = window_record(now, load, current, decision) | {"between_windows": True}
        await self._switch(decision.switch_to, current, decision.reason, entry)
        self._remember(entry)
        return entry

    async def step(self) -> dict[str, Any]:
        """One window: observe, predict, decide, and switch if the controller says so. Returns the window's entry."""
        now = self.host.now()
        arrivals = self.host.arrivals_of(self.app)
        load = observe_load(arrivals, now, self.window_s, unseen=self._unseen)
        current = self.host.deployment(self.app).plan.label
        if self.lookahead is not None:
            await asyncio.to_thread(self.lookahead.refit, arrivals, now, self._unseen)
        forecasting = self.lookahead is not None and self.lookahead.active
        over = None
        if forecasting:
            decision = await self._forecast_decision(load, now, current)
        else:
            cands = await asyncio.to_thread(self.candidates_for, self.horizon.window(load), self.plans)
            if cands:
                over = self.horizon.load(arrivals, now, self._unseen)
                scored = None if over is None else await asyncio.to_thread(self.candidates_for, over, self.plans)
                decision = react_window(
                    self.controller,
                    self.horizon,
                    self.served,
                    now,
                    current,
                    load,
                    cands,
                    over,
                    scored,
                    self.switch_overlap_s,
                    lambda: self.host.spent(self.app),
                    self._moved_at,
                    lambda: self.host.outcomes(self.app),
                )
            else:
                decision = None
        if decision is None:  # e.g. the analytical predictor at an empty window's rate 0: keep the plan, say why
            kept = unscored_record(now, load, current)
            self._remember(kept)
            return kept
        entry: dict[str, Any] = window_record(now, load, current, decision, over)
        if forecasting and self.lookahead is not None:
            entry["forecast"] = self.lookahead.record()
        if self.served is not None and not forecasting:
            entry["served"] = self.served.record(current, load.rate)
        if decision.switch_to is not None:
            await self._switch(decision.switch_to, current, decision.reason, entry)
        self._remember(entry)
        return entry

    async def _forecast_decision(self, load: ObservedLoad, now: float, current: str) -> GranularityDecision | None:
        """While a period holds: the plan for the next window from a schedule over the forecast's windows of one
        period, a warm-up ahead (``Lookahead.windows``, ``Lookahead.decide``); None where a window could not be
        scored."""
        assert self.lookahead is not None
        ahead = self.lookahead.windows(load, now, self.switch_overlap_s, self.window_s)

        def score() -> list[Sequence[Candidate]]:
            return [self.candidates_for(self.horizon.window(w), self.plans) for w in ahead]

        windows = await asyncio.to_thread(score)
        if not windows or not all(windows):
            return None
        return self.lookahead.decide_window(
            self.controller,
            now,
            current,
            load,
            ahead,
            windows,
            self.window_s,
            self.switch_overlap_s,
            lambda: self.host.cost_rate(self.app),
            self._moved_at,
        )

    def _ahead(self, load: ObservedLoad, now: float, to_next_s: float) -> ObservedLoad:
        """The load to plan for: with a forecast, raised to its rate until the next decision and a warm-up after."""
        if self.lookahead is None:
            return load
        return self.lookahead.ahead(load, now, to_next_s + self.switch_overlap_s)

    async def _switch(self, label: str, current: str, reason: str, entry: dict[str, Any]) -> None:
        target = self.plans.get(label)
        if target is None and self.resolve is not None:
            target = self.plans[label] = self.resolve(label)
        if target is None:
            raise ValueError(f"the controller chose {label!r}, which is not among the plans")
        summary = await self.host.switch_plan(self.app, target)
        self._moved_at = self.host.now()
        self.switches += 1
        entry["switch_s"] = summary["switch_s"]
        self.switch_overlap_s = max(self.switch_overlap_s, float(summary["switch_s"]))
        log.info("%s: %s -> %s (%s)", self.app, current, label, reason)

    def _remember(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        del self.history[: -self.keep]
