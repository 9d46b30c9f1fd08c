"""Adaptive granularity in the simulator: the runtime's granularity controller, unmodified, on simulated time.

Every ``window_s`` of simulated time the loop measures the deployment's arrivals over the last window
(``policy.granularity.observe_load``, as the runtime's ``AdaptiveLoop`` does), asks ``candidates_for(load, labels)``
for candidate plans with their predicted SLO hit rate and cost, lets the same ``GranularityController`` decide, and
carries a switch out with ``Simulator.switch`` (warm, move, drain). Candidates without a switch cost are priced as
the runtime's loop prices them (``policy.granularity.priced``), over the longest warm-up of the switches made so far
(``switch_overlap_s`` until the first); with ``horizon_s`` longer than a window, plans are weighed over the horizon
as the runtime's loop weighs them (``policy.granularity.Horizon``: the recent windows' mix, or with
``horizon_as="load"`` the horizon's arrivals scored as one load); with ``emergency_s``, SLO emergencies are also
looked for between windows, as the runtime's loop does; with ``lookahead`` (``policy.forecast.Lookahead``), while
the arrivals repeat with a period, each window's plan comes from a schedule over the forecast period, as in the
runtime's loop (with ``Lookahead(metered=True)``, staying priced at what the current plan's instances cost now,
once it has served a window since its switch, where an onset's overshoot makes that dearer than the table says),
and the horizon is not weighed; with ``served`` (``policy.served.ServedCosts``), plans are priced by what they cost
where they served and close calls are tried, as in the runtime's loop (``Simulator.spent`` is its meter).
``history`` keeps every window and every switch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

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
    window_record,
)
from shoal.policy.served import ServedCosts, react_window
from shoal.sim.engine import Simulator
from shoal.sim.model import Deployment, ModelError

__all__ = ["SimAdaptive", "SimSchedule"]


class SimAdaptive:
    """Adapt deployment ``dep`` of ``sim`` among ``plans`` (plan label -> a Deployment of the same app)."""

    def __init__(
        self,
        sim: Simulator,
        dep: int,
        plans: Mapping[str, Deployment],
        candidates_for: Callable[[ObservedLoad, Sequence[str]], Sequence[Candidate]],
        controller: GranularityController | None = None,
        window_s: float = 10.0,
        switch_overlap_s: float = 2.0,
        horizon_s: float | None = None,
        horizon_as: str = "mix",
        emergency_s: float | None = None,
        expected_burst: float | None = None,
        expected_rate: float | None = None,
        lookahead: Lookahead | None = None,
        seen_before: Sequence[float] = (),
        served: ServedCosts | None = None,
        history_continues: bool = False,
    ) -> None:
        """``seen_before``: arrivals of the deployment before the simulation began (times < 0, on its clock), as a
        service that restarts has its traffic's past at hand (``runtime.arrival_log``): what the look-back of a
        ``lookahead`` fits first. With ``history_continues`` (they end where the simulated traffic begins, as a
        deployment's own log does), the horizon also reads them from the first window (``Horizon.resume``), as the
        runtime's loop does with its log. Off by default: the experiments' histories are runs of other seeds laid
        end to end, whose last run's end does not lead into this run's start, and that seam read as a rise (the GPU
        fan-out trace's forecast arm cost 16 % more with it on, BENCHMARKS.md §13o)."""
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.sim, self.dep, self.plans = sim, dep, _checked_plans(sim, dep, plans)
        self.candidates_for = candidates_for
        self.controller = controller or GranularityController()
        self.window_s = window_s
        self.switch_overlap_s = switch_overlap_s
        self.horizon = Horizon(
            horizon_s, window_s, horizon_as, expected_burst=expected_burst, expected_rate=expected_rate
        )
        self.lookahead = lookahead
        self.served = served
        # when traffic last moved to a new plan: its meter reads its state only once it has served a window
        self._moved_at = -math.inf
        # arrivals kept: a window's, the horizon's or the forecast's look-back
        self._keep_s = max(window_s, horizon_s or 0.0, lookahead.lookback_s if lookahead is not None else 0.0)
        self.history: list[dict[str, Any]] = []
        self.switches = 0
        self.checks = checks_per_window(window_s, emergency_s)
        before = sorted(float(t) for t in seen_before)
        if before and before[-1] >= 0:
            raise ValueError("seen_before holds arrivals before the simulation: times < 0")
        sim.arrivals[dep] = deque(before)
        if before and history_continues:
            self.horizon.resume(before[0])
        sim.kernel.at(window_s, self._window, None)
        for k in range(1, self.checks):  # the checks between windows, each rescheduling itself a window later
            sim.kernel.at(k * window_s / self.checks, self._emergency, None)

    def _emergency(self, _: object) -> None:
        """Between windows: switch only on an SLO emergency at the load of the last ``emergency_span_s`` (as the
        runtime's loop)."""
        sim = self.sim
        now = sim.kernel.now
        sim.kernel.at(now + self.window_s, self._emergency, None)
        if self.dep in sim.switching:
            return
        load = observe_load(list(sim.arrivals[self.dep]), now, emergency_span_s(self.window_s, self.checks))
        current = sim.current_plan(self.dep)
        seen = self._ahead(load, now, self.window_s / self.checks)
        decision = self.controller.emergency(
            now, current, self.candidates_for(self.horizon.window(seen), list(self.plans))
        )
        if decision.switch_to is None:
            return
        entry: dict[str, Any] = window_record(now, load, current, decision) | {"between_windows": True}
        self._switch(decision.switch_to, now, entry)
        self.history.append(entry)

    def _window(self, _: object) -> None:
        sim = self.sim
        now = sim.kernel.now
        arrivals = sim.arrivals[self.dep]
        while arrivals and arrivals[0] <= now - self._keep_s:
            arrivals.popleft()
        kept = list(arrivals)
        load = observe_load(kept, now, self.window_s)
        if self.lookahead is not None:
            self.lookahead.refit(kept, now)
        forecasting = self.lookahead is not None and self.lookahead.active
        over = None if forecasting else self.horizon.load(kept, now)
        current = sim.current_plan(self.dep)
        if self.dep in sim.switching:  # the last switch is still warming its functions: decide next window
            self.history.append({"t": now, "load": asdict(load), "plan": current, "reason": "a switch is under way"})
            sim.kernel.at(now + self.window_s, self._window, None)
            return
        if forecasting:
            decision = self._forecast_decision(load, now, current)
        else:
            cands = self.candidates_for(self.horizon.window(load), list(self.plans))
            scored = None if over is None else self.candidates_for(over, list(self.plans))
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
                lambda: self.sim.spent(self.dep),
                self._moved_at,
                lambda: self.sim.outcomes(self.dep),
            )
        entry: dict[str, Any] = window_record(now, load, current, decision, over)
        if forecasting and self.lookahead is not None:
            entry["forecast"] = self.lookahead.record()
        if self.served is not None and not forecasting:
            entry["served"] = self.served.record(current, load.rate)
        if decision.switch_to is not None:
            self._switch(decision.switch_to, now, entry)
        self.history.append(entry)
        sim.kernel.at(now + self.window_s, self._window, None)

    def _forecast_decision(self, load: ObservedLoad, now: float, current: str) -> GranularityDecision:
        """While a period holds: the plan for the next window from a schedule over the forecast's windows of one
        period, a warm-up ahead (``Lookahead.windows``, ``Lookahead.decide``)."""
        assert self.lookahead is not None
        labels = list(self.plans)
        ahead = self.lookahead.windows(load, now, self.switch_overlap_s, self.window_s)
        windows = [self.candidates_for(self.horizon.window(w), labels) for w in ahead]
        return self.lookahead.decide_window(
            self.controller,
            now,
            current,
            load,
            ahead,
            windows,
            self.window_s,
            self.switch_overlap_s,
            lambda: self.sim.cost_rate(self.dep),
            self._moved_at,
        )

    def _ahead(self, load: ObservedLoad, now: float, to_next_s: float) -> ObservedLoad:
        """The load to plan for: with a forecast, raised to its rate until the next decision and a warm-up after."""
        if self.lookahead is None:
            return load
        return self.lookahead.ahead(load, now, to_next_s + self.switch_overlap_s)

    def _switch(self, label: str, now: float, entry: dict[str, Any]) -> None:
        entry["moves_at"] = self._moved_at = self.sim.switch(self.dep, self.plans[label])
        self.switch_overlap_s = max(self.switch_overlap_s, entry["moves_at"] - now)
        self.switches += 1


class SimSchedule:
    """Serve deployment ``dep`` of ``sim`` by a schedule of plans fixed in advance: ``schedule`` is a list of
    ``(t, label)``, each plan to take traffic from ``t`` on (an oracle's, ``policy.hindsight.switching_schedule``, or
    a what-if of the user's). Each switch starts ``lead_s`` before its ``t`` (the warm-up it will need: the longest
    switch made so far, ``lead_s`` until the first), so traffic moves about at ``t``; with ``ahead=False`` each switch
    starts at its ``t`` and traffic moves a warm-up later, as for a controller that reacts to what it has seen. A
    switch whose time comes while the previous one still warms waits for it. ``history`` keeps every switch (``t``,
    ``plan``, ``switch_to``, ``moves_at``)."""

    def __init__(
        self,
        sim: Simulator,
        dep: int,
        plans: Mapping[str, Deployment],
        schedule: Sequence[tuple[float, str]],
        lead_s: float = 2.0,
        ahead: bool = True,
    ) -> None:
        if not (lead_s >= 0 and lead_s < float("inf")):
            raise ValueError(f"lead_s must be a finite number >= 0, got {lead_s!r}")
        unknown = sorted({label for _, label in schedule} - set(plans))
        if unknown:
            raise ValueError(f"the schedule names plans {unknown} that are not among {sorted(plans)}")
        times = [t for t, _ in schedule]
        if times != sorted(times):
            raise ValueError("the schedule's times must not go down")
        self.sim, self.dep, self.plans = sim, dep, _checked_plans(sim, dep, plans)
        self.lead_s = lead_s if ahead else 0.0
        self.ahead = ahead
        self.history: list[dict[str, Any]] = []
        self.switches = 0
        self._pending = deque(schedule)
        self._next()

    def _next(self) -> None:
        if self._pending:
            t = self._pending[0][0]
            self.sim.kernel.at(max(self.sim.kernel.now, t - self.lead_s), self._due, None)

    def _due(self, _: object) -> None:
        sim = self.sim
        now = sim.kernel.now
        if self.dep in sim.switching:  # the previous switch still warms: come back when it may be done
            sim.kernel.at(now + 0.1, self._due, None)
            return
        t, label = self._pending.popleft()
        current = sim.current_plan(self.dep)
        if label != current:
            moves_at = sim.switch(self.dep, self.plans[label])
            if self.ahead:
                self.lead_s = max(self.lead_s, moves_at - now)
            self.switches += 1
            self.history.append({"t": now, "plan": current, "switch_to": label, "moves_at": moves_at, "due": t})
        self._next()


def _checked_plans(sim: Simulator, dep: int, plans: Mapping[str, Deployment]) -> dict[str, Deployment]:
    """``plans``, once ``dep`` is a deployment of ``sim`` and every plan is of its app."""
    if not 0 <= dep < len(sim.deployments):
        raise ValueError(f"no deployment {dep}; the simulator has {len(sim.deployments)}")
    for label, d in plans.items():
        if d.app is not sim.deployments[dep].app:
            raise ModelError(f"plan {label!r} is a deployment of another app ({d.app.name!r})")
    return dict(plans)
