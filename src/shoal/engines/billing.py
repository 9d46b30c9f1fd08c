"""What calls on an outside engine (Lithops, Ray) cost, reported the way the embedded runtime's meter reports it.

The embedded runtime meters its instances itself. On Lithops and Ray, Shoal sees only the calls: each call runs
inside :func:`timed_call`, which measures the function's own execution time, and :class:`CallMeter` bills it as a
pay-per-use platform would: duration rounded up to ``granularity_s`` (1 ms, as AWS Lambda) times the call's
reserved resources (C vCPU, its memory), at Shoal's price table, plus the per-request fee. The result has the
local engine's shape (``user_bill``: count, seconds, vcpu_s, gib_s, gpu_s, usd). ``resource_cost`` is None: what
the engine's own machines cost while idle or starting is not visible from the calls.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from shoal.predict.prices import DEFAULT_PRICES, PriceTable

__all__ = ["CallMeter", "timed_call"]


def timed_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run ``fn(*args, **kwargs)`` and return ``{"result": ..., "seconds": its execution time}``."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return {"result": out, "seconds": time.perf_counter() - t}


class CallMeter:
    """Running totals of billed calls (thread-safe: futures complete on other threads)."""

    def __init__(
        self, vcpu: float, memory_mb: float, prices: PriceTable = DEFAULT_PRICES, granularity_s: float = 1e-3
    ) -> None:
        self.vcpu, self.memory_mb, self.prices, self.granularity_s = vcpu, memory_mb, prices, granularity_s
        self._lock = threading.Lock()
        self.count = 0
        self.seconds = 0.0

    def add(self, seconds: float) -> None:
        billed = math.ceil(max(seconds, 0.0) / self.granularity_s) * self.granularity_s
        with self._lock:
            self.count += 1
            self.seconds += billed

    def cost(self) -> dict[str, Any]:
        with self._lock:
            count, seconds = self.count, self.seconds
        vcpu_s, gib_s = seconds * self.vcpu, seconds * self.memory_mb / 1024
        p = self.prices
        usd = count * p.per_request + vcpu_s * p.per_vcpu_s + gib_s * p.per_gib_s
        bill = {"count": count, "seconds": seconds, "vcpu_s": vcpu_s, "gib_s": gib_s, "gpu_s": 0.0, "usd": usd}
        return {"user_bill": bill, "resource_cost": None, "billed_from": "call durations measured inside the calls"}
