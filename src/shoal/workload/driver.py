"""An open-loop load driver: requests start at their arrival times whether or not earlier ones have finished.

Closed-loop clients (wrk, a loop of calls) slow down when the server does, and so hide queueing; an open loop
shows it, which is what SLO hit rates are about.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Outcome", "drive", "poisson_arrivals", "summarize"]


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it."""

    t_sent: float  # seconds since the start of the run
    latency_s: float
    status: int


def poisson_arrivals(rate: float, seconds: float, seed: int = 0) -> Iterator[float]:
    """Arrival times (seconds from 0) of a Poisson process of ``rate`` per second over ``seconds``."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    rng = random.Random(seed)
    t = rng.expovariate(rate)
    while t < seconds:
        yield t
        t += rng.expovariate(rate)


async def drive(
    send: Callable[[], Awaitable[int]],
    arrivals: Iterator[float],
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Call ``send`` (which returns an HTTP-like status) at each arrival time; return every outcome, in order sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcomes: list[Outcome] = []
    tasks = []

    async def one(t: float) -> None:
        t0 = time.perf_counter()
        try:
            status = await send()
        except Exception:
            status = 599  # the client could not get an answer at all
        o = Outcome(t, time.perf_counter() - t0, status)
        outcomes.append(o)
        if on_done is not None:
            on_done(o)

    for t in arrivals:
        delay = start + t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(t)))
    await asyncio.gather(*tasks)
    outcomes.sort(key=lambda o: o.t_sent)
    return outcomes


def summarize(outcomes: Sequence[Outcome], slo_s: float) -> dict[str, float]:
    """Request count, successes, p50/p99 latency in ms (of successful requests) and the SLO hit rate.

    A failed request counts as an SLO miss, however fast it failed.
    """
    lat = np.array([o.latency_s for o in outcomes], dtype=float)
    ok = np.array([o.status == 200 for o in outcomes], dtype=bool)
    good = lat[ok] * 1e3
    return {
        "requests": len(outcomes),
        "ok": int(ok.sum()),
        "p50_ms": float(np.percentile(good, 50)) if good.size else float("nan"),
        "p99_ms": float(np.percentile(good, 99)) if good.size else float("nan"),
        "slo_hit": float(np.mean(ok & (lat <= slo_s))) if len(outcomes) else float("nan"),
    }
