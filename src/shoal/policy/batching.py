"""Dynamic batching: when to send the requests waiting in a function's queue to an instance, and how many.

Triton's dynamic batcher semantics: a batch goes as soon as it is full, or once its oldest request has waited
``max_wait_s``; a free instance otherwise waits for more requests, up to that delay. With ``max_batch_size == 1``
every request goes alone and at once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchDecision", "decide_batch"]


@dataclass(frozen=True)
class BatchDecision:
    #: How many of the oldest queued requests to send now as one batch (0: send none now).
    take: int
    #: When to ask again if nothing is sent now (None: when something changes).
    wake_at: float | None = None


def decide_batch(
    *, now: float, queued: int, oldest_arrival: float, free_slots: int, max_batch_size: int, max_wait_s: float
) -> BatchDecision:
    """Decide whether to dispatch a batch now. Pure: the caller passes the time and the queue's state."""
    if max_batch_size < 1 or max_wait_s < 0:
        raise ValueError("max_batch_size must be >= 1 and max_wait_s >= 0")
    if queued <= 0 or free_slots <= 0:
        return BatchDecision(0)
    deadline = oldest_arrival + max_wait_s
    if queued >= max_batch_size or now >= deadline - 1e-9:
        return BatchDecision(min(queued, max_batch_size))
    return BatchDecision(0, wake_at=deadline)
