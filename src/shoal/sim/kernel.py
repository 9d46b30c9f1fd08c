"""A small deterministic discrete-event kernel.

Events sit in a heap of ``(time, seq, callback, arg)``; ``seq`` is a global counter, so events at the same time run
in the order they were scheduled and a run is reproducible (SimPy orders its heap the same way). The kernel also
merges one pre-sorted *source* of arrivals (a trace) without putting its events in the heap: the next arrival is
compared with the heap's top, and at equal times heap events run first. That keeps the heap small (only
completions, cold starts and ticks) and is most of the kernel's speed: it does less per event.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Kernel"]


class Kernel:
    """The clock and the event heap. Callbacks run as ``callback(arg)`` at their time; ``now`` is that time."""

    __slots__ = ("_heap", "_seq", "events", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = itertools.count()
        self.events = 0  # events run so far (heap events and source arrivals)

    def at(self, t: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` at time ``t`` (not before now)."""
        if t < self.now:
            raise ValueError(f"cannot schedule in the past: {t!r} < now {self.now!r}")
        heapq.heappush(self._heap, (t, next(self._seq), callback, arg))

    def after(self, delay: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        self.at(self.now + delay, callback, arg)

    def pending(self) -> int:
        return len(self._heap)

    def run(
        self,
        until: float,
        source: Sequence[float] = (),
        on_arrival: Callable[[int], None] | None = None,
    ) -> None:
        """Run events up to and including time ``until``. ``source`` is a sorted sequence of arrival times; arrival
        ``k`` calls ``on_arrival(k)``. Pass a list (``ndarray.tolist()``): indexing a list is far cheaper."""
        heap = self._heap
        pop = heapq.heappop
        n = len(source)
        k = 0
        nxt = source[0] if n else float("inf")
        events = 0
        while True:
            if heap and heap[0][0] <= nxt:
                t = heap[0][0]
                if t > until:
                    break
                _, _, cb, arg = pop(heap)
                self.now = t
                cb(arg)
            else:
                if nxt > until or k >= n:
                    break
                self.now = nxt
                assert on_arrival is not None
                on_arrival(k)
                k += 1
                nxt = source[k] if k < n else float("inf")
            events += 1
        self.events += events
        self.now = max(self.now, until) if until != float("inf") else self.now
