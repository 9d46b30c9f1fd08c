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

With ``slo_trials`` (off by default), the SLO hit rate too (the loop then needs what each plan served: ``meter``'s
``outcomes``, ``Host.outcomes`` and ``Simulator.outcomes``):

- **Correct**, only while the load holds (``steady``), the predicted SLO hit of a plan that served ``min_requests``
  or more near the held rate (the windows above) by the difference between the hit rate it served and the one
  predicted for those windows (``slo_offset``); where those plans missed significantly more than predicted, the
  plans not yet served have their predicted misses scaled by as much (``miss_factor``: pessimism transfers,
  optimism does not). Under bursts nothing is corrected, and nothing served under them counts as evidence: a
  window's hit rate there is its onset's, or the backlog a burst left, and the window's prediction (a steady load at
  its rate) knows neither. A load is bursty where the horizon's burst index, as the table reads it (``meter``'s
  ``burst``), is above ``steady_burst``, or where the last windows' rates span more than a factor 2.
  A table measured from runs of a minute can call a plan short that is not: image's middle plan at 8 req/s, 0.963-
  0.973 in three 60-s calibration runs, 0.991 and 0.993 over 3-min runs (BENCHMARKS.md §12n); the loop then served
  coarse, 37 % dearer, and could never learn otherwise, for a plan never served is never measured.
- **Try a plan called just short** (``trial``, a ``Trial`` of kind ``"slo"``): where no close call on cost is left,
  the load has held, and a plan predicted within ``slo_gap`` below the target costs ``explore_saving`` less than the
  current plan is metered to, serve it until it has served ``min_requests`` (the controller held meanwhile:
  ``trial_hold``), then let the corrected figures decide. Exploration spends SLO hit, so it is bounded by an error
  budget: a trial starts only where every request served so far left at least ``stop_excess`` misses unspent
  against the target, and it stops and goes back as soon as it has missed ``stop_excess`` more than the target
  allows (a sequential test, which errs towards going back: its error rates are in docs/granularity.md). Once per
  plan and rate band, as for cost.

Pure: no clock, no I/O; the runtime's and the simulator's loops feed it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

from shoal.policy.arrivals import credible_burst
from shoal.policy.granularity import (
    Candidate,
    GranularityController,
    GranularityDecision,
    Horizon,
    ObservedLoad,
    priced,
)

__all__ = ["Outcomes", "ServedCosts", "Trial", "react_window", "served_decision", "trial_hold"]

#: What each plan has served so far, by plan label: (requests, requests within the SLO), counted since the start
#: (``Host.outcomes``); a loop that reads it twice knows what each plan served in between.
Outcomes = Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class Trial:
    """A trial: serving ``to`` instead of ``came_from`` from a load of ``rate`` req/s, to meter it. ``kind``:
    ``"cost"``, a close call on price; ``"slo"``, a plan the predictor calls just short of the SLO target."""

    came_from: str
    to: str
    rate: float
    kind: str = "cost"


@dataclass(frozen=True)
class _Window:
    rate: float
    predicted: float  # USD per second, as the predictor gave it at the window's load
    metered: float  # USD per second, what the plan's instances cost over the window
    requests: int = 0  # requests the plan served (finished) in the window, if the loop counts them
    hits: int = 0  # of those, within the SLO
    predicted_hit: float = 1.0  # the SLO hit rate the predictor gave the plan at the window's load
    burst: float = 0.0  # the horizon's burst index while it was served (``ServedCosts.meter``), 0 where unknown

    def __post_init__(self) -> None:
        for name in ("rate", "predicted", "metered", "burst"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0 <= self.hits <= self.requests:
            raise ValueError(f"hits must be in [0, requests], got {self.hits!r} of {self.requests!r}")
        if not 0 <= self.predicted_hit <= 1:
            raise ValueError(f"predicted_hit must be in [0, 1], got {self.predicted_hit!r}")


def _window_of(row: Sequence[Any]) -> _Window:
    """A window as ``ServedCosts.state`` keeps it: rate, predicted and metered cost, requests, hits, predicted hit,
    burst index (absent from the states of stop 22's logs, whose windows are taken as steady)."""
    rate, predicted, metered, requests, hits, predicted_hit, *rest = row
    (burst,) = rest or (0.0,)
    return _Window(
        float(rate), float(predicted), float(metered), int(requests), int(hits), float(predicted_hit), float(burst)
    )


class ServedCosts:
    """See the module docstring. One per application and loop."""

    def __init__(
        self,
        min_windows: int = 6,
        band: float = 1.25,
        margin: float = 0.05,
        settle_s: float = 60.0,
        keep: int = 720,
        slo_trials: bool = False,
        slo_gap: float = 0.03,
        min_requests: int = 400,
        stop_excess: float = 3.0,
        explore_saving: float = 0.10,
        steady_burst: float = 0.02,
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
        if not (math.isfinite(slo_gap) and 0 <= slo_gap < 1):
            raise ValueError(f"slo_gap must be a finite number in [0, 1), got {slo_gap!r}")
        if min_requests < 1:
            raise ValueError(f"min_requests must be >= 1, got {min_requests!r}")
        if not (math.isfinite(stop_excess) and stop_excess > 0):
            raise ValueError(f"stop_excess must be a finite number > 0 (misses), got {stop_excess!r}")
        if not (math.isfinite(explore_saving) and 0 <= explore_saving < 1):
            raise ValueError(f"explore_saving must be a finite number in [0, 1), got {explore_saving!r}")
        if not (math.isfinite(steady_burst) and steady_burst >= 0):
            raise ValueError(f"steady_burst must be a finite number >= 0 (a burst index), got {steady_burst!r}")
        self.min_windows = min_windows
        self.band = band
        self.margin = margin
        self.keep = keep
        #: Seconds after the loop's start or a switch before a window is metered: the autoscaler's scale-out from
        #: the warm instances and its scale-in after (a stable window and a keep-alive) are not the plan's price.
        self.settle_s = settle_s
        #: Correct SLO hit rates by what plans served, and try plans called within ``slo_gap`` short of the target
        #: (the module docstring); a plan's figures count once it served ``min_requests`` near a load; a trial
        #: stops once it missed ``stop_excess`` more than the target allows, and starts only for a plan
        #: ``explore_saving`` cheaper than the current one by the meter.
        self.slo_trials = slo_trials
        self.slo_gap = slo_gap
        self.min_requests = min_requests
        self.stop_excess = stop_excess
        self.explore_saving = explore_saving
        #: The burst index above which a load counts as bursty for SLO evidence: a third of the runtime's bursty
        #: calibration (0.06), a quarter of the GPU scenarios' (0.07-0.10), 5-20 times a trace's (0.001-0.004).
        self.steady_burst = steady_burst
        self._burst = 0.0  # the horizon's burst index at the last ``meter``
        self._began: float | None = None
        self._served: dict[str, deque[_Window]] = {}
        self._tried: dict[str, list[float]] = {}  # plan -> rates it was tried at
        self._last: tuple[float, str, float] | None = None  # (time, plan, spent) at the last ``meter``
        self._outcomes: dict[str, tuple[int, int]] = {}  # ``outcomes`` at the last ``meter``
        self._rates: deque[float] = deque(maxlen=min_windows)  # the last windows' rates, every plan (``steady``)
        #: The trial being metered, if any.
        self.on_trial: Trial | None = None
        #: An SLO trial's requests served and missed since it began, its warm-up included.
        self.trial_served: tuple[int, int] = (0, 0)
        #: Requests served and missed by every plan, as ``outcomes`` last counted them (and before a restart,
        #: ``restore``): the error budget's ledger.
        self.served_total: tuple[int, int] = (0, 0)
        self._total_base: tuple[int, int] = (0, 0)
        #: Why the last trial ended (``conclude``), for the decision's reason.
        self.verdict = ""

    def observe(
        self,
        plan: str,
        rate: float,
        predicted_per_s: float,
        metered_per_s: float,
        requests: int = 0,
        hits: int = 0,
        predicted_hit: float = 1.0,
        burst: float = 0.0,
    ) -> None:
        """One window ``plan`` served whole, settled: the load's rate, the predicted and the metered cost; and,
        where the loop counts them, the requests it served, how many within the SLO, the predicted hit rate, and the
        horizon's burst index."""
        window = _Window(rate, predicted_per_s, metered_per_s, requests, hits, predicted_hit, burst)
        self._served.setdefault(plan, deque(maxlen=self.keep)).append(window)

    def state(self) -> dict[str, Any]:
        """What the loop has learned, JSON-able, to keep over a restart (``restore``; ``runtime.arrival_log`` keeps
        it beside the arrivals): every plan's metered windows, the rates each plan was tried at, and the error
        budget's ledger. A trial under way is not kept: a restart ends it, and it is not tried again at that rate."""
        return {
            "windows": {plan: [list(astuple(w)) for w in ws] for plan, ws in self._served.items()},
            "tried": {plan: list(rates) for plan, rates in self._tried.items()},
            "served_total": list(self.served_total),
        }

    def restore(self, state: Mapping[str, Any]) -> int:
        """Take back what ``state()`` kept before a restart, in place of what this one holds; returns the windows
        restored. ValueError, with nothing changed, for anything that is not such a state."""
        try:
            windows = {
                str(plan): deque((_window_of(row) for row in rows), maxlen=self.keep)
                for plan, rows in state["windows"].items()
            }
            tried = {str(plan): [float(r) for r in rates] for plan, rates in state["tried"].items()}
            n, missed = (int(x) for x in state["served_total"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ValueError(f"not a state of the adaptive loop's meter ({type(e).__name__}: {e})") from None
        if not 0 <= missed <= n:
            raise ValueError(f"not a state of the adaptive loop's meter (missed {missed} of {n} requests)")
        self._served, self._tried = windows, tried
        self.served_total = self._total_base = (n, missed)
        return sum(len(ws) for ws in windows.values())

    def meter(
        self,
        now: float,
        plan: str,
        rate: float,
        spent: float,
        candidates: Sequence[Candidate],
        moved_at: float,
        window_s: float,
        outcomes: Outcomes | None = None,
        burst: float = 0.0,
    ) -> None:
        """A loop's call each window: ``spent`` is the USD the current ``plan``'s functions have cost so far
        (``Host.spent``, ``Simulator.spent``), ``candidates`` this window's as predicted, ``moved_at`` when traffic
        last moved to a new plan, ``outcomes`` what each plan has served so far (``Host.outcomes``), if the loop
        counts it, ``burst`` the horizon's burst index as the table prices it (``policy.arrivals.credible_burst``; 0
        where the loop has no horizon). The window since the last call is observed if ``plan`` served it whole and
        it began ``settle_s`` (at least a window) after the move or the loop's first call (before, the meter reads
        the scale-out from the warm instances, the old plan's drain and the autoscaler's settling). An SLO trial counts
        what its plan served from the trial's start, warm-up included: its stop rule spends real misses."""
        if not (math.isfinite(burst) and burst >= 0):
            raise ValueError(f"burst must be a finite number >= 0 (a burst index), got {burst!r}")
        last, self._last = self._last, (now, plan, spent)
        self._rates.append(rate)
        self._burst = burst
        served = (0, 0)
        if outcomes is not None:
            before = self._outcomes.get(plan, (0, 0))
            now_n, now_hits = outcomes.get(plan, (0, 0))
            served = (max(0, now_n - before[0]), max(0, min(now_hits - before[1], now_n - before[0])))
            self._outcomes = dict(outcomes)
            requests = sum(n for n, _ in outcomes.values())
            missed = requests - sum(hits for _, hits in outcomes.values())
            self.served_total = (self._total_base[0] + requests, self._total_base[1] + missed)
        t = self.on_trial
        if t is not None and t.kind == "slo" and plan == t.to:
            n, missed = self.trial_served
            self.trial_served = (n + served[0], missed + served[0] - served[1])
        if self._began is None:
            self._began = now
        predicted = next((c for c in candidates if c.plan == plan), None)
        if last is None or last[1] != plan or predicted is None or now <= last[0]:
            return
        if last[0] < max(moved_at, self._began) + max(self.settle_s, window_s):
            return
        metered = max(0.0, spent - last[2]) / (now - last[0])
        self.observe(plan, rate, predicted.cost_per_s, metered, served[0], served[1], predicted.slo_hit, burst)

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

    def slo_offset(self, plan: str, rate: float) -> float | None:
        """With ``slo_trials``: the SLO hit rate ``plan`` served over its windows near ``rate`` less the rate the
        predictor gave it there (both over the requests, so a busy window weighs more), or over all its windows
        where fewer than ``min_requests`` were served near (as ``ratio``: a window's rate scatters, a Poisson load's
        5-s windows at 8 req/s by ±16 %, and a correction that came and went with it made the loop leave the plan
        it had just found good); None until it served ``min_requests``. The offset is added to the predictor's
        figure, so at another load the table's shape across loads still decides."""
        near = self._slo_windows(plan, rate)
        if not near:
            return None
        requests = sum(w.requests for w in near)
        return (sum(w.hits for w in near) - sum(w.predicted_hit * w.requests for w in near)) / requests

    def _slo_windows(self, plan: str, rate: float) -> list[_Window]:
        """The windows ``slo_offset`` reads: those near ``rate``; none without ``slo_trials`` or where fewer than
        ``min_requests`` were served near. Not all of a plan's windows where too few lie near, as for cost: a
        plan's SLO hit at a burst says nothing of it at the quiet rate, and a second version that fell back so moved
        chain under bursts to plans that collapsed (BENCHMARKS.md §13p). Nor windows served under bursts (a burst
        index above ``steady_burst``): between bursts the rate holds at the quiet one, but a window there still
        serves the backlog of the last burst."""
        if not self.slo_trials:
            return []
        near = [w for w in self._near(plan, rate) if w.requests > 0 and w.burst <= self.steady_burst]
        return near if sum(w.requests for w in near) >= self.min_requests else []

    def miss_factor(self, plans: Sequence[str], rate: float) -> float:
        """How many times the misses the predictor gave the ``plans`` with their own evidence near ``rate`` they
        really missed, pooled, where that is significant (``stop_excess`` misses or more beyond the prediction), else
        1: what a plan not yet served is taken to miss more than the predictor says. Pessimism transfers, optimism
        does not: a table that under-states every plan's misses (bursts shaped otherwise than its calibration's)
        would otherwise make the one plan served look worse than every plan not yet served, and the loop would
        wander to plans that are worse still (the GPU scenarios' detect under bursts: 0.88 against adaptive's
        0.97, a first version); in miss-rate space, so a plan the table calls perfect stays so and the ranking of
        the others is kept. A table that over-states misses is left for trials to find out, within their budget."""
        served = predicted = 0.0
        for plan in plans:
            for w in self._slo_windows(plan, rate):
                served += w.requests - w.hits
                predicted += (1.0 - w.predicted_hit) * w.requests
        if served - predicted < self.stop_excess:
            return 1.0
        return served / max(predicted, 1.0)

    def budget(self, slo_target: float) -> float:
        """The error budget left: the misses ``slo_target`` allowed over every request served so far (all plans,
        trials included, as ``outcomes`` counts them), less those there were. The user's SLO counts every request,
        so exploration is paid from what the service as a whole has saved, and what trials spent is spent."""
        requests, missed = self.served_total
        return (1.0 - slo_target) * requests - missed

    def adjust(self, candidates: Sequence[Candidate], rate: float) -> list[Candidate]:
        """The candidates, each plan metered near ``rate`` priced at its predicted cost times its ``ratio``, each
        other plan times the geometric mean of those ratios (switch cost included); all as predicted where no plan
        has been metered near ``rate``. Why the others too: a table that underprices every plan alike (its runs
        shorter than the service's, its machine quieter) would otherwise make every plan not yet served look
        cheaper than the one served, and the loop would wander to each in turn. With ``slo_trials``, each plan's
        SLO hit is corrected too where it served enough near ``rate`` (``slo_offset``); the others keep the
        predictor's: how far a table is off on SLO hit is a plan's own (how near its capacity the load sits)."""
        ratios = {c.plan: r for c in candidates if (r := self.ratio(c.plan, rate)) is not None}
        if not ratios:
            return self._slo_adjusted(list(candidates), rate)
        common = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios)) if all(ratios.values()) else 0.0
        out = []
        for c in candidates:
            r = ratios.get(c.plan, common)
            out.append(replace(c, cost_per_s=c.cost_per_s * r, switch_cost=c.switch_cost * r))
        return self._slo_adjusted(out, rate)

    def steady(self) -> bool:
        """Whether the load holds, whatever plan served it: the horizon's burst index is at most ``steady_burst``
        and the last ``min_windows`` windows' rates lie within a factor 2 of each other (a Poisson load's windows of
        40 requests scatter by ±16 %, so six of them span a factor 1.4-1.7; a burst's edge moves the rate 4-8
        times). The rates alone are not enough: the GPU scenarios' bursts come every 4 minutes and hold a quarter
        to a third of it, so the quiet between them holds for a dozen windows (BENCHMARKS.md §13q)."""
        return not self.bursty() and len(self._rates) == self.min_windows and max(self._rates) <= 2.0 * min(self._rates)

    def bursty(self) -> bool:
        """Whether the horizon's burst index at the last ``meter`` was above ``steady_burst``: windows served now are
        not SLO evidence."""
        return self._burst > self.steady_burst

    def _held_rate(self, rate: float) -> float:
        """The rate SLO evidence is looked up at: the mean of the last windows' rates while the load holds (one
        window's rate scatters, and evidence looked up at it came and went, and the loop with it), else ``rate``."""
        return sum(self._rates) / len(self._rates) if self.steady() else rate

    def _slo_adjusted(self, candidates: list[Candidate], rate: float) -> list[Candidate]:
        """Each plan that served ``min_requests`` near ``rate`` with its SLO hit corrected by ``slo_offset``; each
        other plan with its predicted misses times ``miss_factor`` of those. Only while the load is ``steady``: under
        bursts a window's hit rate is its onset's, which the table's bursty class prices, and correcting by it
        moved chain to plans that collapsed (BENCHMARKS.md §13p)."""
        if not self.steady():
            return candidates
        rate = self._held_rate(rate)
        offsets = {c.plan: off for c in candidates if (off := self.slo_offset(c.plan, rate)) is not None}
        factor = self.miss_factor(list(offsets), rate) if offsets else 1.0
        out = []
        for c in candidates:
            hit = c.slo_hit + offsets[c.plan] if c.plan in offsets else 1.0 - (1.0 - c.slo_hit) * factor
            out.append(c if hit == c.slo_hit else replace(c, slo_hit=min(1.0, max(0.0, hit))))
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
            and not self._tried_near(c.plan, rate)
        ]
        if untried:
            return self._start(min(untried, key=lambda c: c.cost_per_s), current, rate, "cost")
        return self._slo_trial(current, weighed, rate, slo_target)

    def _tried_near(self, plan: str, rate: float) -> bool:
        return any(self._within(r, rate) for r in self._tried.get(plan, ()))

    def _start(self, pick: Candidate, current: str, rate: float, kind: str) -> Candidate:
        self._tried.setdefault(pick.plan, []).append(rate)
        self.on_trial = Trial(current, pick.plan, rate, kind)
        self.trial_served = (0, 0)
        return pick

    def _slo_trial(
        self, current: str, weighed: Sequence[Sequence[Candidate]], rate: float, slo_target: float
    ) -> Candidate | None:
        """With ``slo_trials``: the cheapest plan predicted within ``slo_gap`` below ``slo_target`` and at least
        ``explore_saving`` cheaper than the current plan in every list weighed, not yet measured near ``rate`` nor
        tried there, where ``stop_excess`` misses of the error budget are left (``budget``) and the load is
        ``steady``: a trial under bursts would be judged by evidence that does not count."""
        if not self.slo_trials or not self.steady() or self.budget(slo_target) < self.stop_excess:
            return None
        eligible: set[str] | None = None
        for cands in weighed:
            by_plan = {c.plan: c for c in cands}
            limit = by_plan[current].cost_per_s * (1.0 - self.explore_saving)
            short = {
                c.plan
                for c in cands
                if c.plan != current and slo_target - self.slo_gap <= c.slo_hit < slo_target and c.cost_per_s <= limit
            }
            eligible = short if eligible is None else eligible & short
        untried = [
            c
            for c in (weighed[0] if weighed else ())
            if c.plan in (eligible or set())
            and self.slo_offset(c.plan, self._held_rate(rate)) is None
            and not self._tried_near(c.plan, rate)
        ]
        if not untried:
            return None
        return self._start(min(untried, key=lambda c: c.cost_per_s), current, rate, "slo")

    def conclude(self, current: str, candidates: Sequence[Candidate], rate: float, slo_target: float) -> str | None:
        """While a trial runs: the plan to go back to once both plans have been metered near the trial's rate and
        the one tried from is the cheaper and meets ``slo_target`` (``candidates``: this window's, ``adjust``-ed),
        else None. The trial ends when both are metered, when the load leaves its band, or when another switch
        moved off the tried plan."""
        t = self.on_trial
        if t is None:
            return None
        if t.kind == "slo" and current == t.to:  # no band: trial_hold releases it where the load makes it urgent
            return self._conclude_slo(t, candidates, slo_target)
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
        self.verdict = f"trial over: {back.plan} costs less than {current} by the meter"
        return back.plan

    def _conclude_slo(self, t: Trial, candidates: Sequence[Candidate], slo_target: float) -> str | None:
        """An SLO trial's window (its plan serving): back to the plan it came from once it
        missed ``stop_excess`` more than ``slo_target`` allows, or once it served ``min_requests`` near the rate and
        its corrected SLO hit (``candidates`` are ``adjust``-ed) is short of the target; over, staying, where that
        meets the target; else None and it goes on."""
        served, missed = self.trial_served
        excess = missed - (1.0 - slo_target) * served
        if excess >= self.stop_excess:
            self.on_trial = None
            self.verdict = (
                f"trial over: {t.to} missed the SLO for {missed} of {served} requests, {excess:.1f} more than "
                f"{slo_target:g} allows: back to {t.came_from}"
            )
            return t.came_from
        near = self._slo_windows(t.to, self._held_rate(t.rate))
        if not near:
            return None
        self.on_trial = None
        hit = sum(w.hits for w in near) / sum(w.requests for w in near)
        if hit >= slo_target:
            self.verdict = f"trial over: {t.to} served its SLO target"
            return None
        self.verdict = f"trial over: {t.to} served {hit:.3f} within the SLO, short of {slo_target:g}"
        return t.came_from

    def record(self, plan: str, rate: float) -> dict[str, object]:
        """For a window's record: the current plan's ratio near ``rate``, its metered windows, and the trial."""
        entry: dict[str, object] = {"ratio": self.ratio(plan, rate), "windows": self.windows(plan)}
        if self.slo_trials:  # whether SLO evidence counts now (the load holds, the horizon not bursty), and what
            entry |= {"steady": self.steady(), "slo_offset": self.slo_offset(plan, self._held_rate(rate))}
        t = self.on_trial
        if t is not None:
            trial: dict[str, object] = {"from": t.came_from, "to": t.to}
            if t.kind == "slo":
                trial |= {"kind": "slo", "served": self.trial_served[0], "missed": self.trial_served[1]}
            entry["trial"] = trial
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
        return controller.follow(now, current, back, served.verdict)
    if not controller.dwelt(now):
        return None
    weighed = [candidates] if recent is None else [candidates, recent]
    pick = served.trial(current, weighed, rate, target)
    if pick is None:
        return None
    here = next(c for c in candidates if c.plan == current)
    change = pick.cost_per_s / here.cost_per_s - 1
    if served.on_trial is not None and served.on_trial.kind == "slo":
        return controller.follow(
            now,
            current,
            pick.plan,
            f"{pick.plan} is priced {change:+.0%} against what {current} costs by the meter and predicted "
            f"{pick.slo_hit:.3f} against the target {target:g}, within the predictor's error; "
            f"{served.budget(target):.1f} misses of budget left: trying it until it served "
            f"{served.min_requests} requests, or missed {served.stop_excess:g} more than the target allows",
        )
    # a close call is within the table's error; a plan priced well below was held back by the controller's own
    # rules (confirmation, a switch's payback), which a trial does not wait for: say which it is
    why = "within the table's error" if change >= -served.margin else "not yet metered"
    return controller.follow(
        now,
        current,
        pick.plan,
        f"{pick.plan} is priced {change:+.0%} against what {current} costs by the meter, {why}: trying it to meter it",
    )


def trial_hold(
    served: ServedCosts,
    controller: GranularityController,
    now: float,
    current: str,
    rate: float,
    candidates: Sequence[Candidate],
) -> GranularityDecision | None:
    """Before the controller weighs a window (``candidates`` ``adjust``-ed): while an SLO trial runs, its end (back
    to the plan it came from, ``ServedCosts.conclude``) or the trial held, for the controller would leave a plan the
    predictor calls short before it served enough to say otherwise; None where no SLO trial runs, where it ended
    staying, where the plan tried is in an SLO emergency at this load, or where the horizon turned bursty (then the
    trial ends and the controller answers: windows served under bursts are no evidence, so the trial could not
    conclude). Not ended by the load leaving a band, as a cost trial is: a 5-s window's rate scatters by ±16 % at
    8 req/s, and the stop rule guards the SLO whatever the load does."""
    t = served.on_trial
    if t is None or t.kind != "slo":
        return None
    target = controller.config.slo_target
    back = served.conclude(current, candidates, rate, target)
    if back is not None:
        return controller.follow(now, current, back, served.verdict)
    here = next((c for c in candidates if c.plan == current), None)
    urgent = here is None or here.slo_hit < target - controller.config.urgent_slo_gap
    if served.on_trial is None or urgent or served.bursty():
        served.on_trial = None
        return None
    n, missed = served.trial_served
    return controller.follow(
        now,
        current,
        current,
        f"trying {current}: {n} requests served, {missed} missed; a verdict at {served.min_requests} settled",
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
    outcomes: Callable[[], Outcomes] | None = None,
) -> GranularityDecision:
    """One window of a loop that reacts (no forecast), as the runtime's and the simulator's loops both make it: this
    window's ``candidates`` at ``load`` and the horizon's (``scored`` at ``over``), metered and corrected by
    ``served`` if given (``spent()``: what the current plan's functions have cost so far; ``moved_at``: when traffic
    last moved to a new plan; ``outcomes()``: what each plan served, for ``ServedCosts(slo_trials=True)``), mixed by
    the ``horizon``, priced for a switch over ``overlap_s``, weighed by the controller, and where it stays, a trial's
    end or a close call (``served_decision``); an SLO trial's windows are ``trial_hold``'s."""
    if served is not None:
        counted = outcomes() if outcomes is not None else None
        burst = credible_burst(over) if over is not None else math.nan
        burst = burst if math.isfinite(burst) else 0.0  # no horizon, or too little seen to read one: taken as steady
        served.meter(now, current, load.rate, spent(), candidates, moved_at, horizon.window_s, counted, burst)
        candidates = served.adjust(candidates, load.rate)
        if scored is not None and over is not None:
            scored = served.adjust(scored, over.rate)
    mix = horizon.recent(load, candidates, scored)
    candidates = priced(candidates, current, overlap_s)
    if mix is not None:
        mix = priced(mix, current, overlap_s)
    if served is not None:
        held = trial_hold(served, controller, now, current, load.rate, candidates)
        if held is not None:
            return held
    decision = controller.decide(now, current, candidates, mix)
    if served is not None and decision.switch_to is None:
        decision = served_decision(served, controller, now, current, load.rate, candidates, mix) or decision
    return decision
