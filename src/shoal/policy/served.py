"""What each plan cost where it served, set against what the predictor said: the adaptive loop's own evidence.

A measured table prices each plan from a few runs. Where a plan sits at a scaling step (one instance or two, by
chance) or a run's start weighs on its row, the table can be off by more than the margin between two plans: on the
text pipeline it put coarse 1 % below the middle plan at 12 req/s where, served for 3 minutes, coarse cost 9-15 %
more, and the adaptive loop stayed on coarse for +19 % against the best static plan (BENCHMARKS.md §12l). The loop
can see the first half of that (what the plan it serves costs) but not the second (what the others would), so:

- **Meter** (``meter``, ``observe``): every window a plan served whole, ``settle_s`` after its switch or the
  loop's start, gives its metered cost per second beside the cost the predictor gave it at that window's load.
- **Correct** (``adjust``): once a plan has ``min_windows`` such windows at rates within a factor ``band`` of the
  load now, its predicted cost is scaled by their ratio, metered over predicted (sums, not a mean of ratios, so a
  quiet window does not weigh like a busy one). Plans never served there are scaled by the geometric mean of the
  metered plans' ratios: what the meter says of the table as a whole, so that only how far plans differ from
  each other, not how far the table is off for all of them, moves the loop.
- **Try a close call** (``trial``): where the load has held for ``min_windows`` windows and another plan that meets
  the target is priced within ``margin`` of what the current plan is metered to cost (the controller's own rule
  needs ``min_cost_saving`` to move, and the table's error can be larger than the difference), serve it until it
  has been metered as long; once per plan and rate band.
- **Conclude** (``conclude``): then go back if the plan tried from is cheaper by the meter, and stay otherwise.

Cost only: SLO hit is still the predictor's (a window's hit rate over a few hundred requests says little about a
99 % target). Pure: no clock, no I/O; the runtime's and the simulator's loops feed it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from shoal.policy.granularity import (
    Candidate,
    GranularityController,
    GranularityDecision,
    Horizon,
    ObservedLoad,
    priced,
)

__all__ = ["ServedCosts", "Trial", "react_window", "served_decision"]


@dataclass(frozen=True)
class Trial:
    """A close call being metered: serving ``to`` instead of ``came_from`` from a load of ``rate`` req/s."""

    came_from: str
    to: str
    rate: float


@dataclass(frozen=True)
class _Window:
    rate: float
    predicted: float  # USD per second, as the predictor gave it at the window's load
    metered: float  # USD per second, what the plan's instances cost over the window


class ServedCosts:
    """See the module docstring. One per application and loop."""

    def __init__(
        self,
        min_windows: int = 6,
        band: float = 1.25,
        margin: float = 0.05,
        settle_s: float = 60.0,
        keep: int = 720,
    ) -> None:
        if not (math.isfinite(settle_s) and settle_s >= 0):
            raise ValueError(f"settle_s must be a finite number >= 0, got {settle_s!r}")
        if min_windows < 1:
            raise ValueError(f"min_windows must be >= 1, got {min_windows!r}")
        if not (math.isfinite(band) and band > 1):
            raise ValueError(f"band must be a finite number > 1 (a factor of the rate), got {band!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        if keep < min_windows:
            raise ValueError(f"keep ({keep!r}) must be at least min_windows ({min_windows!r})")
        self.min_windows = min_windows
        self.band = band
        self.margin = margin
        self.keep = keep
        #: Seconds after the loop's start or a switch before a window is metered: the autoscaler's scale-out from
        #: the warm instances and its scale-in after (a stable window and a keep-alive) are not the plan's price.
        self.settle_s = settle_s
        self._began: float | None = None
        self._served: dict[str, deque[_Window]] = {}
        self._tried: dict[str, list[float]] = {}  # plan -> rates it was tried at
        self._last: tuple[float, str, float] | None = None  # (time, plan, spent) at the last ``meter``
        #: The close call being metered, if any.
        self.on_trial: Trial | None = None

    def observe(self, plan: str, rate: float, predicted_per_s: float, metered_per_s: float) -> None:
        """One window ``plan`` served whole, settled: the load's rate, the predicted and the metered cost."""
        for name, value in (("rate", rate), ("predicted_per_s", predicted_per_s), ("metered_per_s", metered_per_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self._served.setdefault(plan, deque(maxlen=self.keep)).append(_Window(rate, predicted_per_s, metered_per_s))

    def meter(
        self,
        now: float,
        plan: str,
        rate: float,
        spent: float,
        candidates: Sequence[Candidate],
        moved_at: float,
        window_s: float,
    ) -> None:
        """A loop's call each window: ``spent`` is the USD the current ``plan``'s functions have cost so far
        (``Host.spent``, ``Simulator.spent``), ``candidates`` this window's as predicted, ``moved_at`` when traffic
        last moved to a new plan. The window since the last call is observed if ``plan`` served it whole and it
        began ``settle_s`` (at least a window) after the move or the loop's first call (before, the meter reads
        the scale-out from the warm instances, the old plan's drain and the autoscaler's settling)."""
        last, self._last = self._last, (now, plan, spent)
        if self._began is None:
            self._began = now
        predicted = next((c.cost_per_s for c in candidates if c.plan == plan), None)
        if last is None or last[1] != plan or predicted is None or now <= last[0]:
            return
        if last[0] < max(moved_at, self._began) + max(self.settle_s, window_s):
            return
        self.observe(plan, rate, predicted, max(0.0, spent - last[2]) / (now - last[0]))

    def windows(self, plan: str) -> int:
        """How many windows of ``plan`` have been metered (and are kept)."""
        return len(self._served.get(plan, ()))

    def _near(self, plan: str, rate: float) -> list[_Window]:
        return [w for w in self._served.get(plan, ()) if self._within(w.rate, rate)]

    def _metered_near(self, plan: str, rate: float) -> bool:
        """Whether ``plan`` has ``min_windows`` windows near ``rate``: what a trial waits for (``ratio`` may also
        answer from windows at other rates, which say less about this one)."""
        return len(self._near(plan, rate)) >= self.min_windows

    def _within(self, a: float, b: float) -> bool:
        if a <= 0 or b <= 0:
            return a == b
        return max(a, b) / min(a, b) <= self.band

    def ratio(self, plan: str, rate: float) -> float | None:
        """Metered over predicted cost of ``plan`` over its served windows near ``rate``, or over all its windows
        where fewer than ``min_windows`` lie near it (a window's rate scatters: a Poisson load's 5-s windows by
        ±13 % at 12 req/s); None until it has ``min_windows`` (or where the predictor priced them at nothing)."""
        near = self._near(plan, rate)
        if len(near) < self.min_windows:
            near = list(self._served.get(plan, ()))
        predicted = sum(w.predicted for w in near)
        if len(near) < self.min_windows or predicted <= 0:
            return None
        return sum(w.metered for w in near) / predicted

    def adjust(self, candidates: Sequence[Candidate], rate: float) -> list[Candidate]:
        """The candidates, each plan metered near ``rate`` priced at its predicted cost times its ``ratio``, each
        other plan times the geometric mean of those ratios (switch cost included); all as predicted where no plan
        has been metered near ``rate``. Why the others too: a table that underprices every plan alike (its runs
        shorter than the service's, its machine quieter) would otherwise make every plan not yet served look
        cheaper than the one served, and the loop would wander to each in turn."""
        ratios = {c.plan: r for c in candidates if (r := self.ratio(c.plan, rate)) is not None}
        if not ratios:
            return list(candidates)
        common = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios)) if all(ratios.values()) else 0.0
        out = []
        for c in candidates:
            r = ratios.get(c.plan, common)
            out.append(replace(c, cost_per_s=c.cost_per_s * r, switch_cost=c.switch_cost * r))
        return out

    def holding(self, plan: str, rate: float) -> bool:
        """Whether ``plan``'s last ``min_windows`` windows were all served at rates near ``rate``: the load holds."""
        last = list(self._served.get(plan, ()))[-self.min_windows :]
        return len(last) == self.min_windows and all(self._within(w.rate, rate) for w in last)

    def trial(
        self, current: str, weighed: Sequence[Sequence[Candidate]], rate: float, slo_target: float
    ) -> Candidate | None:
        """A plan to try (and start the trial), or None. ``weighed``: the candidate lists the controller weighed
        this window, already ``adjust``-ed (the window's, and the horizon's where it has one); a plan is tried only
        if it meets ``slo_target`` in each, is priced within ``margin`` of the current plan in each, has not been
        metered near ``rate`` nor tried there, and the current plan has been metered there while the load held."""
        if self.on_trial is not None or self.ratio(current, rate) is None or not self.holding(current, rate):
            return None
        eligible: set[str] | None = None
        for cands in weighed:
            by_plan = {c.plan: c for c in cands}
            if current not in by_plan:
                return None
            limit = by_plan[current].cost_per_s * (1.0 + self.margin)
            close = {c.plan for c in cands if c.plan != current and c.slo_hit >= slo_target and c.cost_per_s <= limit}
            eligible = close if eligible is None else eligible & close
        untried = [
            c
            for c in (weighed[0] if weighed else ())
            if c.plan in (eligible or set())
            and not self._metered_near(c.plan, rate)
            and not any(self._within(r, rate) for r in self._tried.get(c.plan, ()))
        ]
        if not untried:
            return None
        pick = min(untried, key=lambda c: c.cost_per_s)
        self._tried.setdefault(pick.plan, []).append(rate)
        self.on_trial = Trial(current, pick.plan, rate)
        return pick

    def conclude(self, current: str, candidates: Sequence[Candidate], rate: float, slo_target: float) -> str | None:
        """While a trial runs: the plan to go back to once both plans have been metered near the trial's rate and
        the one tried from is the cheaper and meets ``slo_target`` (``candidates``: this window's, ``adjust``-ed),
        else None. The trial ends when both are metered, when the load leaves its band, or when another switch
        moved off the tried plan."""
        t = self.on_trial
        if t is None:
            return None
        if current != t.to or not self._within(rate, t.rate):
            self.on_trial = None
            return None
        if not (self._metered_near(t.to, rate) and self._metered_near(t.came_from, rate)):
            return None
        self.on_trial = None
        by_plan = {c.plan: c for c in candidates}
        back, here = by_plan.get(t.came_from), by_plan.get(current)
        if back is None or here is None or back.slo_hit < slo_target or back.cost_per_s >= here.cost_per_s:
            return None
        return back.plan

    def record(self, plan: str, rate: float) -> dict[str, object]:
        """For a window's record: the current plan's ratio near ``rate``, its metered windows, and the trial."""
        entry: dict[str, object] = {"ratio": self.ratio(plan, rate), "windows": self.windows(plan)}
        if self.on_trial is not None:
            entry["trial"] = {"from": self.on_trial.came_from, "to": self.on_trial.to}
        return entry


def served_decision(
    served: ServedCosts,
    controller: GranularityController,
    now: float,
    current: str,
    rate: float,
    candidates: Sequence[Candidate],
    recent: Sequence[Candidate] | None = None,
) -> GranularityDecision | None:
    """What the loops do where the controller stays (``candidates`` and ``recent`` as it weighed them, ``adjust``-ed):
    go back from a trial that the meter says cost more, or, once the controller's dwell has passed, try a close
    call; None to stay. Taken through ``controller.follow``, so the controller's dwell counts from it."""
    target = controller.config.slo_target
    back = served.conclude(current, candidates, rate, target)
    if back is not None:
        return controller.follow(now, current, back, f"trial over: {back} costs less than {current} by the meter")
    if not controller.dwelt(now):
        return None
    weighed = [candidates] if recent is None else [candidates, recent]
    pick = served.trial(current, weighed, rate, target)
    if pick is None:
        return None
    here = next(c for c in candidates if c.plan == current)
    change = pick.cost_per_s / here.cost_per_s - 1
    # a close call is within the table's error; a plan priced well below was held back by the controller's own
    # rules (confirmation, a switch's payback), which a trial does not wait for: say which it is
    why = "within the table's error" if change >= -served.margin else "not yet metered"
    return controller.follow(
        now,
        current,
        pick.plan,
        f"{pick.plan} is priced {change:+.0%} against what {current} costs by the meter, {why}: trying it to meter it",
    )


def react_window(
    controller: GranularityController,
    horizon: Horizon,
    served: ServedCosts | None,
    now: float,
    current: str,
    load: ObservedLoad,
    candidates: Sequence[Candidate],
    over: ObservedLoad | None,
    scored: Sequence[Candidate] | None,
    overlap_s: float,
    spent: Callable[[], float],
    moved_at: float,
) -> GranularityDecision:
    """One window of a loop that reacts (no forecast), as the runtime's and the simulator's loops both make it: this
    window's ``candidates`` at ``load`` and the horizon's (``scored`` at ``over``), metered and corrected by
    ``served`` if given (``spent()``: what the current plan's functions have cost so far; ``moved_at``: when traffic
    last moved to a new plan), mixed by the ``horizon``, priced for a switch over ``overlap_s``, weighed by the
    controller, and where it stays, a trial's end or a close call (``served_decision``)."""
    if served is not None:
        served.meter(now, current, load.rate, spent(), candidates, moved_at, horizon.window_s)
        candidates = served.adjust(candidates, load.rate)
        if scored is not None and over is not None:
            scored = served.adjust(scored, over.rate)
    mix = horizon.recent(load, candidates, scored)
    candidates = priced(candidates, current, overlap_s)
    if mix is not None:
        mix = priced(mix, current, overlap_s)
    decision = controller.decide(now, current, candidates, mix)
    if served is not None and decision.switch_to is None:
        decision = served_decision(served, controller, now, current, load.rate, candidates, mix) or decision
    return decision
