"""MLLess's scale-in auto-tuner (Sarroca & Sánchez-Artigas, Middleware 2021) as a pure policy.

Training makes most of its progress early; later rounds buy less loss reduction for the same money. MLLess removes
workers when a worker's marginal progress no longer pays for what it costs. :func:`decide` is that rule and nothing
else: no I/O, no clock; the driver (:func:`shoal.train.train` with ``autotune=True``) feeds it the job's history
after every round and acts on the answer.

The rule. Over a window of rounds, *progress* is the relative loss reduction ``ln(L_start / L_end)`` and *cost* is
the billed worker-seconds times the price: ``sum(workers_r*round_s_r)*cost_per_worker_s``. In a BSP job whose
rounds are compute-bound, one of W workers does 1/W of each round's work, so removing it slows progress by about
1/W while saving 1/W of the spend: the worker's marginal progress per dollar is the job's current progress per
dollar, ``e_now``. Valued at the rate the job achieved in its first window, ``e_ref``, the worker pays for itself
while ``e_now >= threshold*e_ref``; below that, one worker is removed. Loss that did not fall (or rose) over the
window is no progress at all. After a change the policy waits for a full window at the new size before deciding
again, and never goes below ``min_workers``.

The price cancels out of the ratio; it is an input so that the reason can state the figures in money.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Decision", "decide", "progress"]


@dataclass(frozen=True)
class Decision:
    """How many workers the job should have from now on, and why."""

    workers: int
    reason: str
    #: Relative loss reduction per dollar over the last window and over the first one (None: not enough history).
    e_now: float | None = None
    e_ref: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def progress(before: float, after: float) -> float:
    """Relative loss reduction from ``before`` to ``after``: ``ln(before/after)`` for positive losses, else the
    relative difference; 0 when the loss did not fall."""
    if before > 0 and after > 0:
        return max(0.0, math.log(before / after))
    return max(0.0, (before - after) / max(abs(before), 1e-300))


def decide(
    losses: Sequence[float],
    workers: int,
    round_s: Sequence[float],
    cost_per_worker_s: float,
    *,
    workers_per_round: Sequence[int] | None = None,
    min_workers: int = 1,
    window: int = 3,
    threshold: float = 0.05,
) -> Decision:
    """The worker count for the next rounds.

    ``losses[r]``, ``round_s[r]`` (seconds) and ``workers_per_round[r]`` (default: ``workers`` throughout) describe
    every round done so far; ``workers`` is the current count; ``cost_per_worker_s`` what one worker costs per second.
    """
    n = len(losses)
    if len(round_s) != n:
        raise ValueError(f"{n} losses but {len(round_s)} round times")
    ws = list(workers_per_round) if workers_per_round is not None else [workers] * n
    if len(ws) != n:
        raise ValueError(f"{n} losses but {len(ws)} worker counts")
    if window < 1 or workers < 1 or min_workers < 1 or cost_per_worker_s <= 0:
        raise ValueError("window, workers, min_workers and cost_per_worker_s must be positive")
    if workers <= min_workers:
        return Decision(workers, f"at the minimum of {min_workers} worker(s)")
    at_size = 0
    for w in reversed(ws):
        if w != workers:
            break
        at_size += 1
    if n < window + 1 or at_size < window:
        return Decision(workers, f"waiting for {window} rounds at {workers} workers")

    def efficiency(a: int, b: int) -> float:
        """Relative loss reduction per dollar over rounds a+1..b (the loss after round a to the loss after b)."""
        spend = sum(ws[r] * round_s[r] for r in range(a + 1, b + 1)) * cost_per_worker_s
        return progress(losses[a], losses[b]) / max(spend, 1e-300)

    e_ref = efficiency(0, window)
    e_now = efficiency(n - 1 - window, n - 1)
    if e_ref <= 0:
        return Decision(workers, "no progress in the first window: nothing to compare with", e_now, e_ref)
    ratio = e_now / e_ref
    if ratio >= threshold:
        return Decision(
            workers, f"progress per $ is {ratio:.3g} of the first window's (>= {threshold:g}): keep", e_now, e_ref
        )
    return Decision(
        workers - 1,
        f"progress per $ fell to {ratio:.3g} of the first window's (< {threshold:g}): "
        f"remove a worker ({workers} -> {workers - 1})",
        e_now,
        e_ref,
    )
