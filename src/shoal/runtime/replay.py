"""Replay arrival times against a running host, open loop and in-process, and keep what happened over time.

Experiments (the granularity experiment, the simulator's validation) need more than a latency list: which plan served
each request, how many instances ran and what the resource cost was in every window, while plans may switch under
the load. ``replay`` starts each request at its scheduled time on the host's own event loop (no HTTP, so the load
generator costs little CPU), measures latency from the *scheduled* arrival (so a late start counts against the
platform, as a user would see it), and samples the deployment every ``sample_s``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shoal.predict.measured import Measurement
from shoal.runtime.adaptive import observe_load
from shoal.runtime.errors import ServeError
from shoal.runtime.orchestrator import invoke

if TYPE_CHECKING:
    from shoal.runtime.host import Host

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """Per request: scheduled arrival, latency (NaN if it never finished), status, and the plan that served it.
    Per sample (every ``sample_s``): time, plan, live instances, the resource cost and user bill so far, and
    ``late_s``, how late the sample was taken: the event loop that sends the load and serves it was held up that
    long (a stall shows in every run file, whatever held it: a blocking call, a long collection, the machine)."""

    arrival_s: np.ndarray
    latency_s: np.ndarray
    status: np.ndarray
    plan: list[str]
    samples: list[dict[str, Any]] = field(default_factory=list)

    def slo_hit(self, slo_s: float, start: float = 0.0, end: float = math.inf) -> float:
        """Fraction of requests arriving in [start, end) that succeeded within ``slo_s`` (failures are misses)."""
        sel = (self.arrival_s >= start) & (self.arrival_s < end)
        if not sel.any():
            return math.nan
        return float(np.mean((self.status[sel] == 200) & (self.latency_s[sel] <= slo_s)))

    def cost_between(self, start: float, end: float, key: str = "cost_usd") -> float:
        """Resource cost (or ``"bill_usd"``) accrued between two times, from the samples around them."""
        ts = np.array([s["t"] for s in self.samples])
        vs = np.array([s[key] for s in self.samples])
        if ts.size == 0:
            return math.nan
        return float(np.interp(end, ts, vs) - np.interp(start, ts, vs))

    def windows(self, window_s: float, slo_s: float) -> list[dict[str, Any]]:
        """Per window of ``window_s``: requests, SLO hit rate, resource cost, and the plan that served most of it."""
        end = max(float(self.arrival_s.max(initial=0.0)), max((s["t"] for s in self.samples), default=0.0))
        out = []
        for k in range(math.ceil(end / window_s)):
            a, b = k * window_s, (k + 1) * window_s
            sel = (self.arrival_s >= a) & (self.arrival_s < b)
            plans = [p for p, s in zip(self.plan, sel, strict=True) if s]
            out.append(
                {
                    "start": a,
                    "requests": int(sel.sum()),
                    "slo_hit": self.slo_hit(slo_s, a, b),
                    "cost_usd": self.cost_between(a, b),
                    "plan": max(set(plans), key=plans.count) if plans else None,
                }
            )
        return out

    def measurement(self, slo_s: float, start: float = 0.0, end: float | None = None) -> Measurement:
        """This run as one row of the empirical predictor's table: the plan that served most requests, the load's
        rate and burstiness, SLO hit rate, resource cost per second and p99, over [start, end)."""
        end = float(self.arrival_s.max(initial=0.0)) if end is None else end
        sel = (self.arrival_s >= start) & (self.arrival_s < end)
        plans = [p for p, s in zip(self.plan, sel, strict=True) if s]
        load = observe_load(self.arrival_s, end, end - start)
        ok = sel & (self.status == 200)
        return Measurement(
            plan=max(set(plans), key=plans.count) if plans else "",
            rate=load.rate,
            scv=load.scv if math.isfinite(load.scv) and load.scv > 0 else 1.0,
            slo_hit=self.slo_hit(slo_s, start, end),
            cost_per_s=self.cost_between(start, end) / (end - start),
            p99_ms=float(np.percentile(self.latency_s[ok], 99) * 1e3) if ok.any() else math.inf,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrival_s": self.arrival_s.tolist(),
            "latency_s": [None if math.isnan(x) else x for x in self.latency_s.tolist()],
            "status": self.status.tolist(),
            "plan": self.plan,
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ReplayResult:
        """The inverse of ``to_dict`` (a run saved as JSON by a benchmark, read back for analysis)."""
        return cls(
            arrival_s=np.asarray(doc["arrival_s"], dtype=np.float64),
            latency_s=np.asarray([math.nan if x is None else x for x in doc["latency_s"]], dtype=np.float64),
            status=np.asarray(doc["status"], dtype=np.int64),
            plan=list(doc["plan"]),
            samples=list(doc.get("samples", [])),
        )


async def replay(
    host: Host,
    app: str,
    times: Sequence[float] | np.ndarray,
    value_of: Callable[[int], Any],
    sample_s: float = 0.25,
    end_s: float | None = None,
    lead_s: float = 0.3,
) -> ReplayResult:
    """Send request ``i`` (input ``value_of(i)``) at ``times[i]`` seconds after a short lead, wait for all of them,
    and sample the deployment every ``sample_s`` until ``end_s`` (default: the last arrival plus one sample)."""
    arrivals = np.asarray(times, dtype=np.float64)
    if arrivals.size and (np.diff(arrivals) < 0).any():
        raise ValueError("arrival times must be sorted")
    loop = asyncio.get_running_loop()
    base = loop.time() + lead_s
    host_base = host.now() + lead_s
    n = int(arrivals.size)
    latency = np.full(n, math.nan)
    status = np.zeros(n, dtype=np.int64)
    plan = [""] * n
    stop_at = end_s if end_s is not None else float(arrivals.max(initial=0.0)) + sample_s
    samples: list[dict[str, Any]] = []

    async def one(i: int, t_sched: float) -> None:
        try:
            res = await invoke(host, app, value_of(i))
            status[i], plan[i] = 200, res.timing["plan"]
        except ServeError as e:
            status[i], plan[i] = e.status, host.deployment(app).plan.label
        latency[i] = loop.time() - t_sched

    async def sampler() -> None:
        k = 0
        while True:
            due = base + k * sample_s
            await asyncio.sleep(max(0.0, due - loop.time()))
            late = loop.time() - due
            now = host.now()
            dep = host.deployment(app)
            samples.append(
                {
                    "t": round(now - host_base, 4),
                    "plan": dep.plan.label,
                    "instances": sum(1 for inst in host.instances.values() if inst.pool.app == app),
                    "cost_usd": host.meter.resource_cost(now).usd,
                    "bill_usd": host.meter.user_bill().usd,
                    "late_s": round(max(0.0, late), 4),
                }
            )
            if k * sample_s >= stop_at:
                return
            k += 1

    sampling = loop.create_task(sampler())
    tasks = []
    for i, a in enumerate(arrivals.tolist()):
        delay = base + a - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, base + a)))
    await asyncio.gather(*tasks)
    await sampling
    return ReplayResult(arrivals, latency, status, plan, samples)
