"""The granularity controller: when to move an application to another plan, as a pure policy.

Every window (``window_s``, 10 s by default) its caller measures the load, asks the planner for the candidate plans
with their predicted SLO hit rate and resource cost at that load, and hands them here with the plan now serving. The
controller answers whether to switch, and to which plan:

- **Which plan is best** at this load: the cheapest whose predicted SLO hit rate meets the target; if none meets
  it, the one with the highest predicted SLO hit rate (cost breaks ties).
- **Whether the gain outweighs the cost of switching.** A switch warms the new plan's functions (cold starts, paid
  for while both plans overlap) and disturbs the autoscalers' history. So a switch happens only if the best plan
  (a) meets the target where the current plan does not, or raises the predicted SLO hit rate by ``min_slo_gain``, or
  (b) meets the target like the current plan and is cheaper by ``min_cost_saving`` (relative), *and* its saving over
  ``payback_s`` pays for its ``switch_cost``; or (c) when no plan meets the target, does at least as well as the
  current plan and is cheaper, by the same rule as (b). Without (c), a plan stuck below the target (every plan
  misses under bursts) was never left for one predicted as good and cheaper (the GPU experiment's detect/bursty).
- **Noise is not a miss.** Predictions carry error (an empirical table from runs of a few seconds is off by a
  percent or so): the plan now serving counts as meeting the target while its prediction is within
  ``slo_tolerance`` of it. Without this, the first pilot of the experiment switched on predicted hit rates of 0.978
  and 0.986 against a 0.99 target and paid for two plans at once, for nothing (docs/granularity.md).
- **Hysteresis, so that it does not flap**: the same plan must come out best in ``confirm_windows`` consecutive
  windows, and no switch happens within ``min_dwell_s`` of the previous one. An SLO emergency (the current plan is
  predicted to miss the target by more than ``urgent_slo_gap``) needs one window only, and may cut the dwell short.
- **Plan for the recent mix of loads, answer an emergency at once.** A caller may also pass ``recent``: each plan
  scored over the loads of the last few windows (``mixed``: SLO hit rate weighted by each window's requests, cost
  per second averaged over the windows). Then the plan weighed is the one best over that mix, the "best static plan"
  of the recent past, unless the current plan is predicted to miss the target urgently at *this* window's load,
  which is answered from this window's candidates alone. Why: under bursts that come and go, the best plan of each
  window flips between a cheap plan for the quiet and a plan with more functions for the burst, and a reactive
  switch arrives a confirmation and a warm-up late each time; a plan that does well over both costs less than the
  chase (the runtime experiment's text/bursty, docs/granularity.md).
- **Or price the recent load as one** (``Horizon`` with ``mode="load"``): the loop observes the arrivals of the whole
  horizon as one load (its mean rate, the SCV of its gaps and its burst index: a horizon that holds a burst and a
  quiet phase has both well above Poisson's, ``policy.arrivals``) and has that load scored. A predictor that has
  seen bursty operation (an empirical table with rows measured under bursty loads, docs/granularity.md) then prices
  what the mix cannot: the scale-outs, cold starts and queueing at each burst's onset, which no window's
  steady-state price contains. The burst index, unlike the SCV, does not mistake a slow drift for bursts.

Pure: no clock (times come in the observations), no I/O, no predictor calls. ``shoal.predict`` produces the
candidates; the runtime and the simulator both call ``decide``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from shoal.policy.arrivals import BURST_SCALE_S, ObservedLoad, Unseen, observe_load

__all__ = [
    "Candidate",
    "ControllerConfig",
    "GranularityController",
    "GranularityDecision",
    "HORIZON_MODES",
    "Horizon",
    "ObservedLoad",
    "RecentCandidates",
    "best_candidate",
    "checks_per_window",
    "emergency_span_s",
    "horizon_windows",
    "mixed",
    "observe_load",
    "priced",
    "unscored_record",
    "window_record",
]


@dataclass(frozen=True)
class ControllerConfig:
    """How eagerly the controller switches. The defaults favour staying put: a switch is never free."""

    slo_target: float = 0.99
    confirm_windows: int = 2
    min_dwell_s: float = 60.0
    min_cost_saving: float = 0.10
    min_slo_gain: float = 0.02
    urgent_slo_gap: float = 0.05
    slo_tolerance: float = 0.01
    payback_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.slo_target <= 1:
            raise ValueError(f"slo_target must be in (0, 1], got {self.slo_target!r}")
        if self.confirm_windows < 1:
            raise ValueError(f"confirm_windows must be >= 1, got {self.confirm_windows!r}")
        for name in ("min_dwell_s", "min_cost_saving", "min_slo_gain", "urgent_slo_gap", "slo_tolerance", "payback_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Candidate:
    """A plan with what the predictor says it would do at the observed load.

    ``cost_per_s``: resource cost in USD per second of serving; ``switch_cost``: the one-off cost in USD of moving to
    it from the current plan (the warmed instances' cold starts and overlap). For the current plan it is 0.
    """

    plan: str
    slo_hit: float
    cost_per_s: float
    switch_cost: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.slo_hit <= 1:
            raise ValueError(f"candidate {self.plan!r}: slo_hit must be in [0, 1], got {self.slo_hit!r}")
        if not (math.isfinite(self.cost_per_s) and self.cost_per_s >= 0):
            raise ValueError(f"candidate {self.plan!r}: cost_per_s must be finite and >= 0, got {self.cost_per_s!r}")
        if not (math.isfinite(self.switch_cost) and self.switch_cost >= 0):
            raise ValueError(f"candidate {self.plan!r}: switch_cost must be finite and >= 0")


@dataclass(frozen=True)
class GranularityDecision:
    """``switch_to`` is the plan to move to now, or None to stay; ``best`` the best plan of this window."""

    switch_to: str | None
    best: str
    reason: str


def best_candidate(candidates: Sequence[Candidate], slo_target: float) -> Candidate:
    """The cheapest candidate that meets ``slo_target``; if none does, the highest SLO hit rate (then cheapest).
    Ties go to the earlier candidate, so the answer does not depend on float noise in the order of a set."""
    if not candidates:
        raise ValueError("no candidate plans to choose from")
    meeting = [c for c in candidates if c.slo_hit >= slo_target]
    if meeting:
        return min(meeting, key=lambda c: c.cost_per_s)
    return min(candidates, key=lambda c: (-c.slo_hit, c.cost_per_s))


def priced(candidates: Sequence[Candidate], current: str, overlap_s: float) -> list[Candidate]:
    """The candidates, each plan other than ``current`` that came without a switch cost given one: its cost per
    second over ``overlap_s``, the time its fresh instances are paid for before they take traffic (cold starts) while
    the old plan still serves and drains. The runtime's and the simulator's loops pass the longest switch they have
    seen, so the controller weighs what a switch costs where it runs."""
    if not (math.isfinite(overlap_s) and overlap_s >= 0):
        raise ValueError(f"overlap_s must be a finite number >= 0, got {overlap_s!r}")
    return [
        c if c.plan == current or c.switch_cost > 0 else replace(c, switch_cost=c.cost_per_s * overlap_s)
        for c in candidates
    ]


def mixed(windows: Sequence[tuple[float, Sequence[Candidate]]]) -> list[Candidate]:
    """Each plan's candidates over several windows, as one candidate per plan: the SLO hit rate weighted by each
    window's weight (its requests: the share of all requests predicted to meet the SLO), the cost per second averaged
    over the windows (each window lasts as long), the switch cost of the last window (a switch costs what it costs
    now). Only plans scored in every window are kept, in the order of the last window. Equal weights when every
    weight is 0 (no request in any window)."""
    if not windows:
        raise ValueError("no windows to mix")
    weights = [float(w) for w, _ in windows]
    if any(not (math.isfinite(w) and w >= 0) for w in weights):
        raise ValueError(f"window weights must be finite and >= 0, got {weights}")
    if sum(weights) == 0:
        weights = [1.0] * len(windows)
    total = sum(weights)
    per_window = [{c.plan: c for c in cands} for _, cands in windows]
    out = []
    for c in windows[-1][1]:
        if not all(c.plan in w for w in per_window):
            continue
        scores = [w[c.plan] for w in per_window]
        out.append(
            Candidate(
                c.plan,
                min(1.0, sum(wt * x.slo_hit for wt, x in zip(weights, scores, strict=True)) / total),
                sum(x.cost_per_s for x in scores) / len(scores),
                c.switch_cost,
            )
        )
    return out


def checks_per_window(window_s: float, emergency_s: float | None) -> int:
    """How many checks a loop makes per window: one (the window's) without ``emergency_s``, else the window divided
    into spans of about ``emergency_s``, the last of which is the window's own step."""
    if emergency_s is None:
        return 1
    if not (math.isfinite(emergency_s) and 0 < emergency_s <= window_s):
        raise ValueError(f"emergency_s must be a number in (0, window_s = {window_s!r}], got {emergency_s!r}")
    return max(1, round(window_s / emergency_s))


def emergency_span_s(window_s: float, checks: int) -> float:
    """The span of arrivals an emergency check between windows observes: three check intervals, at most a window,
    as Knative's panic window (6 s, looked at every 2 s). A rate over one 2-s interval is noisy (a few hundred
    arrivals) and a spike that short is absorbed by queues and the autoscaler; over three, a burst's onset is
    still seen within two intervals. In the GPU experiment it made fan-out's answers to bursts 6 % cheaper for
    0.001 of SLO hit, and did not remove the trace's one emergency, a surge that held 163 req/s for 6 s
    (BENCHMARKS.md §13d)."""
    if checks < 1:
        raise ValueError(f"checks must be >= 1, got {checks!r}")
    return min(window_s, 3.0 * window_s / checks)


def horizon_windows(horizon_s: float | None, window_s: float) -> int:
    """How many windows of ``window_s`` a horizon of ``horizon_s`` spans (None: one window, no mix)."""
    if horizon_s is None:
        return 1
    if not (math.isfinite(horizon_s) and horizon_s >= window_s > 0):
        raise ValueError(f"horizon_s must be a finite number >= window_s ({window_s!r}), got {horizon_s!r}")
    return max(1, round(horizon_s / window_s))


class RecentCandidates:
    """The candidates of an application's last ``windows`` windows with their request counts, mixed for
    ``GranularityController.decide``'s ``recent``; the runtime's and the simulator's loops both keep one."""

    def __init__(self, windows: int) -> None:
        if windows < 1:
            raise ValueError(f"windows must be >= 1, got {windows!r}")
        self.windows = windows
        self._kept: deque[tuple[float, list[Candidate]]] = deque(maxlen=windows)

    def add(self, requests: float, candidates: Sequence[Candidate]) -> list[Candidate] | None:
        """Keep this window's candidates; the mix of the windows kept, or None while there is one window only (the
        controller then weighs this window's candidates, as without a horizon)."""
        self._kept.append((requests, list(candidates)))
        return mixed(self._kept) if len(self._kept) > 1 else None


HORIZON_MODES = ("mix", "load")


class Horizon:
    """How an adaptive loop looks back beyond its window, for ``GranularityController.decide``'s ``recent``.

    ``mode="mix"``: each plan over the last windows' candidates (``RecentCandidates``, ``mixed``). ``mode="load"``:
    the arrivals of the last ``horizon_s`` observed as one load, its burst index at ``burst_scale_s`` included,
    scored by the loop's predictor like a window's (``load``), for a predictor that knows what burstiness costs.
    Without ``horizon_s``, no look back at all. The runtime's and the simulator's loops both keep one.

    ``expected_rate`` and ``expected_burst`` (load mode): the mean rate and burst index the traffic is expected to
    have (its history's, say), so that the first burst meets a plan chosen for the traffic as it will be instead of
    the one cheapest in the quiet before it. Each is blended with what has been seen by the share of the horizon
    not yet seen (all of it at the first window, nothing once a whole horizon has passed), and the horizon is
    scored from the first window on.
    """

    def __init__(
        self,
        horizon_s: float | None,
        window_s: float,
        mode: str = "mix",
        burst_scale_s: float = BURST_SCALE_S,
        expected_burst: float | None = None,
        expected_rate: float | None = None,
    ) -> None:
        if mode not in HORIZON_MODES:
            raise ValueError(f"horizon mode must be one of {', '.join(HORIZON_MODES)}, got {mode!r}")
        if not (burst_scale_s > 0 and math.isfinite(burst_scale_s)):
            raise ValueError(f"burst_scale_s must be a finite number > 0, got {burst_scale_s!r}")
        for name, value in (("expected_burst", expected_burst), ("expected_rate", expected_rate)):
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if (expected_burst, expected_rate) != (None, None) and (mode != "load" or horizon_s is None):
            raise ValueError("an expected load is for a horizon priced as one load (mode='load', horizon_s)")
        self.expected_burst = expected_burst
        self.expected_rate = expected_rate
        self.windows = RecentCandidates(horizon_windows(horizon_s, window_s))
        self.horizon_s = horizon_s
        self.window_s = window_s
        self.mode = mode
        self.burst_scale_s = burst_scale_s
        self._began: float | None = None

    def resume(self, since: float) -> None:
        """Arrivals have been observed since ``since`` (on the loop's clock, before it started): a loop restarted
        with the traffic it served before (``runtime.arrival_log``) reads its horizon over them from the first
        window, as if it had not stopped, instead of waiting a horizon to see the load again. Before the first
        window only."""
        if not math.isfinite(since):
            raise ValueError(f"since must be a finite time, got {since!r}")
        if self._began is None:
            self._began = since

    def load(self, arrivals: Sequence[float] | np.ndarray, now: float, unseen: Unseen = ()) -> ObservedLoad | None:
        """In ``load`` mode, the load of the horizon ending ``now`` (of the time since the first window with traffic
        began, while that is shorter), for the loop to score; None otherwise, and while less than two windows have
        passed (one window's load is this window's: nothing to add). The horizon starts at the first window with
        three arrivals or more: the idle time before a service's first requests is not burstiness, and one gap that
        long among a window's short gaps would make its SCV look like a burst's. ``unseen``: spans in which
        arrivals were not observed (a restart's downtime), taken out of the readings (``observe_load``); what has
        been seen is the span less them."""
        if self._began is None:
            if observe_load(arrivals, now, self.window_s).count < 3:
                return None
            self._began = now - self.window_s
        if self.mode != "load" or self.horizon_s is None:
            return None
        span = min(self.horizon_s, now - self._began)
        if (self.expected_burst, self.expected_rate) != (None, None):  # until as much has been seen as it holds
            seen = observe_load(arrivals, now, span, self.burst_scale_s, unseen)
            w = max(0.0, 1.0 - (span - seen.unseen_s) / self.horizon_s)
            rate = seen.rate if self.expected_rate is None else w * self.expected_rate + (1.0 - w) * seen.rate
            burst = math.nan if self.expected_burst is None else self.expected_burst
            return replace(seen, rate=rate, expected_burst=burst, expected_weight=w)
        if span < 2 * self.window_s - 1e-9:
            return None
        return observe_load(arrivals, now, span, self.burst_scale_s, unseen)

    def window(self, load: ObservedLoad) -> ObservedLoad:
        """The load to score a window at: as observed, except in ``load`` mode, where burstiness is the horizon's
        and a window is scored as steady load at its rate (SCV 1, burst index 0). A window's SCV measures clustering
        over seconds, not the bursts of minutes that an autoscaler has to chase and that a table's bursty rows price:
        a trace window at 1.2 was priced as partly bursty, and the GPU experiment's fan-out switched urgently on it."""
        if self.mode != "load":
            return load
        return replace(load, scv=1.0, burst=0.0, burst_scale_s=self.burst_scale_s)

    def recent(
        self, load: ObservedLoad, candidates: Sequence[Candidate], scored: Sequence[Candidate] | None = None
    ) -> list[Candidate] | None:
        """What to pass as ``decide``'s ``recent`` after this window: in ``mix`` mode the mix of the windows kept
        (this one added), in ``load`` mode ``scored``, the candidates at the horizon's load (``load``)."""
        if self.mode == "load":
            return list(scored) if scored is not None else None
        return self.windows.add(load.count, candidates)


class GranularityController:
    """See the module docstring. One controller per application."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self._streak_plan: str | None = None
        self._streak = 0
        self._last_switch: float | None = None
        self._last_now: float | None = None

    def decide(
        self,
        now: float,
        current: str,
        candidates: Sequence[Candidate],
        recent: Sequence[Candidate] | None = None,
    ) -> GranularityDecision:
        """Weigh this window's candidates against ``current`` (which must be among them) at time ``now``; with
        ``recent`` (``mixed`` over the last windows), weigh those instead unless the current plan is in an SLO
        emergency at this window's load (module docstring)."""
        cfg = self.config
        by_plan = self._observe(now, current, candidates)
        here = by_plan[current]
        where = "at this load"
        if recent is not None and not self._urgent(here, best_candidate(candidates, cfg.slo_target)):
            mix = {c.plan: c for c in recent}
            if current in mix:
                candidates, here, where = list(recent), mix[current], "over the recent loads"
        best = best_candidate(candidates, cfg.slo_target)
        if best.plan == current:
            self._streak_plan, self._streak = None, 0
            return GranularityDecision(None, current, f"{current} is the best plan {where}")

        why = self._worth_it(here, best)
        if why is None:
            self._streak_plan, self._streak = None, 0
            return GranularityDecision(
                None, best.plan, f"{best.plan} is better but not by enough to pay for a switch; staying on {current}"
            )
        if where != "at this load":
            why = f"{why} {where}"
        self._streak = self._streak + 1 if self._streak_plan == best.plan else 1
        self._streak_plan = best.plan
        urgent = self._urgent(here, best)
        needed = 1 if urgent else cfg.confirm_windows
        if self._streak < needed:
            return GranularityDecision(
                None, best.plan, f"{why}; best in {self._streak} of {needed} windows needed before switching"
            )
        if not urgent and not self.dwelt(now):
            wait = cfg.min_dwell_s - (now - (self._last_switch or now))
            return GranularityDecision(None, best.plan, f"{why}; the last switch was too recent ({wait:.0f} s to go)")
        self._last_switch = now
        self._streak_plan, self._streak = None, 0
        return GranularityDecision(best.plan, best.plan, f"{why}{' (urgent)' if urgent else ''}: switch to {best.plan}")

    def emergency(self, now: float, current: str, candidates: Sequence[Candidate]) -> GranularityDecision:
        """Between windows: switch only if the current plan is in an SLO emergency at this load (as ``decide``
        judges one: predicted to miss the target by more than ``urgent_slo_gap``, and the best plan meets it or
        does ``min_slo_gain`` better), at the load of the last ``emergency_span_s``.
        Anything else is left to the next window: no streak is counted, no cost weighed. A loop calls it every
        ``emergency_s``, much shorter than a window, so that a burst is answered seconds after it begins rather
        than at the end of the window it began in (Knative's panic window answers the same lag in scaling)."""
        by_plan = self._observe(now, current, candidates)
        here, best = by_plan[current], best_candidate(candidates, self.config.slo_target)
        if best.plan == current or not self._urgent(here, best):
            return GranularityDecision(None, best.plan, "no SLO emergency between windows")
        self._last_switch = now
        self._streak_plan, self._streak = None, 0
        return GranularityDecision(
            best.plan,
            best.plan,
            f"{best.plan} is predicted to hit {best.slo_hit:.3f} where {current} misses ({here.slo_hit:.3f}) "
            f"(urgent, between windows): switch to {best.plan}",
        )

    def follow(self, now: float, current: str, plan: str, reason: str) -> GranularityDecision:
        """A decision made by a schedule rather than by ``decide`` (``policy.forecast.Lookahead.decide``: a plan per
        forecast window): taken as it is, with its switch noted, so that once the schedule stops (the forecast
        lapses) ``decide``'s dwell counts from it and no streak of before carries over."""
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went backwards: {now!r} < {self._last_now!r}")
        self._last_now = now
        self._streak_plan, self._streak = None, 0
        if plan == current:
            return GranularityDecision(None, plan, reason)
        self._last_switch = now
        return GranularityDecision(plan, plan, f"{reason}: switch to {plan}")

    def dwelt(self, now: float) -> bool:
        """Whether ``min_dwell_s`` has passed since the last switch (or there was none)."""
        return self._last_switch is None or now - self._last_switch >= self.config.min_dwell_s

    def _observe(self, now: float, current: str, candidates: Sequence[Candidate]) -> dict[str, Candidate]:
        """Check and note the time of a decision; the candidates by plan, the current plan among them."""
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went backwards: {now!r} < {self._last_now!r}")
        self._last_now = now
        by_plan = {c.plan: c for c in candidates}
        if current not in by_plan:
            raise ValueError(f"the current plan {current!r} is not among the candidates {sorted(by_plan)}")
        return by_plan

    def _urgent(self, here: Candidate, best: Candidate) -> bool:
        """The current plan misses the target by more than ``urgent_slo_gap`` and the best plan would meet it, or
        raise the predicted hit rate by ``min_slo_gain`` at least. Any gain at all was enough at first: under
        bursts where every plan misses, chain was switched urgently, in the middle of a burst, for 0.001 of
        predicted SLO hit (0.742 to 0.743), and a switch mid-burst costs more than that (BENCHMARKS.md §13d)."""
        cfg = self.config
        if here.slo_hit >= cfg.slo_target - cfg.urgent_slo_gap:
            return False
        return best.slo_hit >= cfg.slo_target or best.slo_hit - here.slo_hit >= cfg.min_slo_gain

    def _worth_it(self, here: Candidate, best: Candidate) -> str | None:
        """Why moving from ``here`` to ``best`` pays, or None if it does not."""
        cfg = self.config
        here_meets = here.slo_hit >= cfg.slo_target - cfg.slo_tolerance
        if not here_meets and best.slo_hit >= cfg.slo_target:
            return (
                f"{best.plan} meets the SLO target ({best.slo_hit:.3f}) where {here.plan} does not ({here.slo_hit:.3f})"
            )
        if not here_meets and best.slo_hit - here.slo_hit >= cfg.min_slo_gain:
            return f"{best.plan} raises the predicted SLO hit rate from {here.slo_hit:.3f} to {best.slo_hit:.3f}"
        # A cheaper plan pays if both meet the target, or if none does: then the best plan has the highest predicted
        # hit rate of all (best_candidate), as high as the current plan's, and a saving on top.
        nothing_meets = best.slo_hit < cfg.slo_target
        if here.cost_per_s > 0 and (here_meets or nothing_meets):
            saving = here.cost_per_s - best.cost_per_s
            pays = saving / here.cost_per_s >= cfg.min_cost_saving and saving * cfg.payback_s >= best.switch_cost
            if pays and best.slo_hit >= cfg.slo_target:
                return f"{best.plan} meets the target {100 * saving / here.cost_per_s:.0f}% cheaper than {here.plan}"
            if pays:  # nothing meets the target: the best plan is the likeliest to, and cheaper too
                return (
                    f"no plan meets the target; {best.plan} does as well as {here.plan} ({best.slo_hit:.3f} against "
                    f"{here.slo_hit:.3f}) {100 * saving / here.cost_per_s:.0f}% cheaper"
                )
        return None


def window_record(
    now: float,
    load: ObservedLoad,
    current: str,
    decision: GranularityDecision,
    horizon: ObservedLoad | None = None,
) -> dict[str, object]:
    """One window of an adaptive loop, as the runtime's and the simulator's ``history`` keep it (with the horizon's
    load where the loop scored one)."""
    entry: dict[str, object] = {
        "t": round(now, 3),
        "load": _load_record(load),
        "plan": current,
        "best": decision.best,
        "switch_to": decision.switch_to,
        "reason": decision.reason,
    }
    if horizon is not None:
        entry["horizon_load"] = _load_record(horizon)
    return entry


def unscored_record(now: float, load: ObservedLoad, current: str) -> dict[str, object]:
    """A window in which the predictor could score no plan (the analytical model at an empty window's rate 0, say):
    the plan is kept and the record says why, instead of a decision over no candidates."""
    return {
        "t": round(now, 3),
        "load": _load_record(load),
        "plan": current,
        "switch_to": None,
        "reason": f"no plan could be scored at this load ({load.rate:g} req/s); staying on {current}",
    }


def _load_record(load: ObservedLoad) -> dict[str, float]:
    record = {"rate": load.rate, "scv": load.scv, "count": load.count, "window_s": load.window_s}
    if load.unseen_s > 0:  # the rate is over the window less these seconds
        record |= {"unseen_s": load.unseen_s}
    if load.burst_scale_s is not None:
        record |= {"burst": load.burst, "burst_scale_s": load.burst_scale_s}
    if load.expected_weight > 0:  # rate as priced, blended with the expectation; count / window_s as seen
        record |= {"expected_weight": load.expected_weight}
        if math.isfinite(load.expected_burst):
            record |= {"expected_burst": load.expected_burst}
    return record
