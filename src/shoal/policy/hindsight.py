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

- ``load_known_best``: each window's best plan by the controller's rule, chosen from what each plan did in the
  windows of *other* runs whose load was nearest this window's (its rate and the previous window's), switching
  free. ``per_window_best`` reads the window's own outcome, so it also knows that run's noise: on a steady load,
  whose best plan never changes, it still picks whichever fixed run's autoscaler happened to hold fewer instances
  in each window, and comes in under every fixed plan (BENCHMARKS.md §12m). This one knows the load in advance and
  nothing else: the issue's "per-window oracle that knows the load in advance", with its cost read from the run
  whose window it chose, unbiased by the choice.

Pure: candidates in, plan labels out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shoal.policy.granularity import Candidate, best_candidate

__all__ = ["load_known_best", "per_window_best", "switching_schedule"]


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


def load_known_best(
    runs: Sequence[tuple[Sequence[int], Sequence[Sequence[Candidate]]]],
    slo_target: float,
    neighbours: int = 8,
    previous_weight: float = 0.5,
) -> list[list[str]]:
    """Per run, per window, the best plan by the controller's rule at what each plan is expected to do at that
    window's load (see the module). ``runs``: each run's arrivals per window and its candidates per window (what
    every plan did there; each run scores the same plans, over the same arrivals for every plan). A window's expected
    SLO hit and cost per plan are those of its ``neighbours`` nearest windows of the other runs (and any as near as
    the last of them; the same run's other windows where there is one run), nearest by the window's arrivals and
    ``previous_weight`` times the previous window's (what the autoscalers carry over); a run's first window is
    matched with first windows (the start from warm instances) where the other runs have them. SLO hit is weighed
    by arrivals; cost per second is the mean."""
    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours!r}")
    if not (math.isfinite(previous_weight) and previous_weight >= 0):
        raise ValueError(f"previous_weight must be a finite number >= 0, got {previous_weight!r}")
    plans: list[str] | None = None
    for r, (arrivals, windows) in enumerate(runs):
        if len(arrivals) != len(windows):
            raise ValueError(f"run {r}: {len(arrivals)} windows of arrivals against {len(windows)} of candidates")
        for k, cands in enumerate(windows):
            labels = [c.plan for c in cands]
            if plans is None:
                plans = labels
            if sorted(labels) != sorted(plans) or len(set(labels)) != len(labels):
                raise ValueError(f"run {r}, window {k} scores plans {labels}, not {plans} once each")
    # per window: its arrivals, the previous window's, and whether it is a run's first
    features = [[(float(a[k]), float(a[k - 1] if k else a[k]), k == 0) for k in range(len(a))] for a, _ in runs]
    chosen: list[list[str]] = []
    for r, (_, windows) in enumerate(runs):
        others = [(q, j) for q in range(len(runs)) if q != r for j in range(len(runs[q][1]))]
        mine: list[str] = []
        for k in range(len(windows)):
            pool = others or [(r, j) for j in range(len(windows)) if j != k] or [(r, k)]
            pool = [qj for qj in pool if features[qj[0]][qj[1]][2] == features[r][k][2]] or pool
            near = _nearest(pool, features, features[r][k], neighbours, previous_weight)
            expected = []
            for label in plans or []:
                outcomes = [(runs[q][0][j], next(c for c in runs[q][1][j] if c.plan == label)) for q, j in near]
                requests = sum(n for n, _ in outcomes)
                hit = sum(n * c.slo_hit for n, c in outcomes) / requests if requests else 1.0
                cost = sum(c.cost_per_s for _, c in outcomes) / len(outcomes)
                expected.append(Candidate(label, hit, cost))
            mine.append(best_candidate(expected, slo_target).plan)
        chosen.append(mine)
    return chosen


def _nearest(
    pool: list[tuple[int, int]],
    features: list[list[tuple[float, float, bool]]],
    at: tuple[float, float, bool],
    neighbours: int,
    previous_weight: float,
) -> list[tuple[int, int]]:
    """The ``neighbours`` windows of ``pool`` (run, window) nearest ``at``, and any as near as the last of them."""

    def distance(qj: tuple[int, int]) -> float:
        there = features[qj[0]][qj[1]]
        return math.hypot(there[0] - at[0], previous_weight * (there[1] - at[1]))

    ranked = sorted(pool, key=distance)
    reach = distance(ranked[min(neighbours, len(ranked)) - 1])
    return [qj for qj in ranked if distance(qj) <= reach]
