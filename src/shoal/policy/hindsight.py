"""Plan schedules in hindsight: what an oracle that knows every window's load would have served.

Two references for an adaptive controller, each from every plan's measured (or predicted) SLO hit rate and cost per
window:

- ``per_window_best``: each window's best plan by the controller's rule (``best_candidate``), as if switching were
  free and instant. A bound no real switch reaches: a switch warms the new plan's functions while the old ones
  still serve and drain, and under bursts the best plan flips every burst.
- ``switching_schedule``: the cheapest sequence of plans, one per window, that the controller's rule admits in
  every window (a plan that meets the SLO target there, or where none does, one with the highest SLO hit rate),
  paying each switch as ``policy.granularity.priced`` prices it: the new plan's cost per second over ``overlap_s``.
  Found exactly by dynamic programming over windows (Viterbi: plans x windows states). Served live with every switch
  made ``overlap_s`` ahead of its window, it is the oracle that knows the load in advance and pays what switching
  costs where it runs (the experiments' "scheduled oracle").

Pure: candidates in, plan labels out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shoal.policy.granularity import Candidate, best_candidate

__all__ = ["per_window_best", "switching_schedule"]


def per_window_best(windows: Sequence[Sequence[Candidate]], slo_target: float) -> list[str]:
    """Each window's best plan by the controller's rule, switching for free."""
    return [best_candidate(cands, slo_target).plan for cands in windows]


def switching_schedule(
    windows: Sequence[Sequence[Candidate]],
    slo_target: float,
    window_s: float,
    overlap_s: float,
    start: str | None = None,
) -> list[str]:
    """The cheapest admissible plan per window, counting switches (see the module). Every window must score the
    same plans. Ties go to staying on the plan, then to the earlier plan of the first window's order. ``start``:
    the plan serving before the first window (a switch into the first window is paid, as any other); None: the
    first window's plan is free."""
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
    if not (math.isfinite(overlap_s) and overlap_s >= 0):
        raise ValueError(f"overlap_s must be a finite number >= 0, got {overlap_s!r}")
    if not windows:
        return []
    plans = [c.plan for c in windows[0]]
    if not plans or len(set(plans)) != len(plans):
        raise ValueError(f"the first window must score each plan once, got {plans}")
    if start is not None and start not in plans:
        raise ValueError(f"the start plan {start!r} is not among the plans {plans}")
    total: dict[str, float] = {}  # cheapest cost of a schedule up to this window that ends on the plan
    back: list[dict[str, str]] = []  # per window, each plan's predecessor on that cheapest schedule
    for k, cands in enumerate(windows):
        by_plan = {c.plan: c for c in cands}
        if set(by_plan) != set(plans) or len(by_plan) != len(cands):
            raise ValueError(f"window {k} scores plans {sorted(by_plan)}, not {sorted(plans)} once each")
        meeting = [p for p in plans if by_plan[p].slo_hit >= slo_target]
        if not meeting:
            top = max(c.slo_hit for c in cands)
            meeting = [p for p in plans if by_plan[p].slo_hit == top]
        step: dict[str, float] = {}
        came: dict[str, str] = {}
        for p in meeting:
            here = by_plan[p].cost_per_s * window_s
            if k == 0:
                step[p] = here + (by_plan[p].cost_per_s * overlap_s if start is not None and p != start else 0.0)
                continue
            enter = by_plan[p].cost_per_s * overlap_s
            # staying first, so that a tie keeps the plan; then the predecessors in the plans' order
            options = [(total[p], p)] if p in total else []
            options += [(total[q] + enter, q) for q in plans if q in total and q != p]
            cost, prev = min(options, key=lambda o: o[0])
            step[p], came[p] = cost + here, prev
        if not step:  # cannot happen: some plan is always admissible; kept as an invariant
            raise AssertionError(f"window {k}: no admissible plan")
        total = step
        back.append(came)
    last = min(total, key=lambda p: (total[p], plans.index(p)))
    schedule = [last]
    for came in reversed(back[1:]):
        schedule.append(came[schedule[-1]])
    schedule.reverse()
    return schedule
