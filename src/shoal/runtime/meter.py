"""The meter: records every request and instance lifetime, and states the two figures of the cost model.

It is fed by the embedded runtime's event loop (one thread), so it takes no locks; each call is O(1) (stopping an
instance and recording a request touch a few running totals), and memory is bounded by a ring of the last ``keep``
request records. It reads no clock: every call that needs the time is passed ``t`` (``time.monotonic()`` seconds).
"""

from __future__ import annotations

import copy
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shoal.app.spec import Resources
from shoal.predict.prices import DEFAULT_PRICES, PriceTable

__all__ = ["Bill", "Cost", "Meter", "RequestRecord", "Usage"]


@dataclass
class RequestRecord:
    """Everything measured about one request, end to end (all times in seconds)."""

    request_id: str
    app: str
    plan: str
    t_arrival: float
    latency_s: float  # end to end, as the gateway saw it
    ok: bool
    status: int  # HTTP-like: 200, 400, 429, 500, 503, 504 ...
    queue_wait_s: float  # summed over functions
    cold_start_s: float  # time this request waited on cold starts
    exec_s: dict[str, float]  # per stage
    hop_s: float  # data plane + dispatch overhead between functions (everything not queue/cold/exec)
    functions: list[str]  # functions invoked
    billed_s: dict[str, float]  # per function: billed duration (its stages' exec + its overhead in the instance)


@dataclass(frozen=True)
class Usage:
    """Allocated resource-seconds and their price, for one function or in total.

    In a :class:`Bill`, ``count`` is invocations and ``seconds`` billed duration; in a :class:`Cost`, ``count`` is
    instances started and ``seconds`` instance lifetime.
    """

    count: int = 0
    seconds: float = 0.0
    vcpu_s: float = 0.0
    gib_s: float = 0.0
    gpu_s: float = 0.0
    usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _total(per_function: dict[str, Usage]) -> Usage:
    us = per_function.values()
    keys = ("count", "seconds", "vcpu_s", "gib_s", "gpu_s", "usd")
    return Usage(**{k: sum(getattr(u, k) for u in us) for k in keys})


@dataclass(frozen=True)
class Bill:
    """The user bill: what a pay-per-use serverless customer would pay, per function and in total."""

    total: Usage
    per_function: dict[str, Usage] = field(default_factory=dict)

    @property
    def usd(self) -> float:
        return self.total.usd

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total.to_dict(), "per_function": {f: u.to_dict() for f, u in self.per_function.items()}}


@dataclass(frozen=True)
class Cost:
    """The resource cost up to time ``t``: allocated resource-seconds of every instance, idle keep-alive included."""

    t: float
    total: Usage
    per_function: dict[str, Usage] = field(default_factory=dict)

    @property
    def usd(self) -> float:
        return self.total.usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "total": self.total.to_dict(),
            "per_function": {f: u.to_dict() for f, u in self.per_function.items()},
        }


class _Acc:
    """Mutable running totals of one function: count, seconds and resource-seconds."""

    __slots__ = ("count", "gib_s", "gpu_s", "seconds", "vcpu_s")

    def __init__(self) -> None:
        self.count, self.seconds, self.vcpu_s, self.gib_s, self.gpu_s = 0, 0.0, 0.0, 0.0, 0.0

    def add(self, seconds: float, r: Resources) -> None:
        self.seconds += seconds
        self.vcpu_s += seconds * r.vcpu
        self.gib_s += seconds * r.memory_mb / 1024
        self.gpu_s += seconds * r.gpu

    def usage(self, prices: PriceTable, per_count: float) -> Usage:
        usd = (
            self.count * per_count
            + self.vcpu_s * prices.per_vcpu_s
            + self.gib_s * prices.per_gib_s
            + self.gpu_s * prices.per_gpu_s
        )
        return Usage(self.count, self.seconds, self.vcpu_s, self.gib_s, self.gpu_s, usd)


class Meter:
    """Running totals of the user bill and the resource cost, and a bounded window of request records."""

    def __init__(self, prices: PriceTable = DEFAULT_PRICES, keep: int = 100_000) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1 request records, got {keep!r}")
        self.prices = prices
        self.keep = keep
        self.recorded = 0  # requests ever recorded, including those that fell out of the window
        self._records: deque[RequestRecord] = deque(maxlen=keep)
        # function -> resources of its instances, the latest seen: a request is billed at its function's allocation
        self._resources: dict[str, Resources] = {}
        self._alive: dict[str, tuple[str, Resources, float]] = {}  # instance id -> (function, resources, t_start)
        self._cost: dict[str, _Acc] = {}  # function -> lifetimes of stopped instances (+ count of all started)
        self._bill: dict[str, _Acc] = {}  # function -> invocations and billed resource-seconds
        self._unpriced: dict[str, float] = {}  # billed seconds of functions whose resources are not known yet

    # -- instances -------------------------------------------------------------------------------------------------

    def instance_started(self, function: str, instance_id: str, resources: Resources, t: float) -> None:
        """Start the clock of an instance; its allocation counts towards the resource cost until it stops."""
        if instance_id in self._alive:
            raise ValueError(f"instance {instance_id!r} is already started")
        self._resources[function] = resources
        self._alive[instance_id] = (function, resources, t)
        self._cost.setdefault(function, _Acc()).count += 1
        pending = self._unpriced.pop(function, 0.0)
        if pending:
            self._bill.setdefault(function, _Acc()).add(pending, resources)

    def instance_stopped(self, instance_id: str, t: float) -> None:
        """Stop an instance's clock. An unknown or already stopped id is ignored, so teardown paths may repeat it."""
        entry = self._alive.pop(instance_id, None)
        if entry is None:
            return
        function, resources, t_start = entry
        self._cost[function].add(max(0.0, t - t_start), resources)

    def cost_rate(self, functions: Iterable[str]) -> float:
        """USD per second that the live instances of ``functions`` cost now (their allocation at the price table)."""
        wanted, second = set(functions), _Acc()
        for function, resources, _ in self._alive.values():
            if function in wanted:
                second.add(1.0, resources)  # one second of each instance's allocation
        return second.usage(self.prices, 0.0).usd

    def alive(self) -> dict[str, int]:
        """Number of live instances per function."""
        return dict(Counter(function for function, _, _ in self._alive.values()))

    # -- requests --------------------------------------------------------------------------------------------------

    def record(self, rec: RequestRecord) -> None:
        """Keep the record in the window and add its invocations and billed durations to the user bill."""
        self._records.append(rec)
        self.recorded += 1
        for function in rec.functions:
            self._bill.setdefault(function, _Acc()).count += 1
        for function, seconds in rec.billed_s.items():
            resources = self._resources.get(function)
            if resources is None:  # priced when its first instance reports its resources
                self._unpriced[function] = self._unpriced.get(function, 0.0) + seconds
            else:
                self._bill.setdefault(function, _Acc()).add(seconds, resources)

    # -- the two figures -------------------------------------------------------------------------------------------

    def user_bill(self) -> Bill:
        """Per invocation: billed duration x allocated vCPU, GiB and GPU share, plus the per-request fee."""
        per = {f: acc.usage(self.prices, self.prices.per_request) for f, acc in sorted(self._bill.items())}
        return Bill(_total(per), per)

    def resource_cost(self, t: float) -> Cost:
        """Allocated resource-seconds of every instance up to ``t`` (live ones counted up to ``t``), in USD too."""
        accs = {function: copy.copy(acc) for function, acc in self._cost.items()}
        for function, resources, t_start in self._alive.values():
            accs[function].add(max(0.0, t - t_start), resources)
        per = {f: acc.usage(self.prices, 0.0) for f, acc in sorted(accs.items())}
        return Cost(t, _total(per), per)

    # -- latency ---------------------------------------------------------------------------------------------------

    def records(self, app: str | None = None) -> list[RequestRecord]:
        """The kept requests (the last ``keep``), of one app or all, oldest first."""
        return [r for r in self._records if app is None or r.app == app]

    def latency_summary(self, app: str | None = None) -> dict[str, Any]:
        """Over the kept window: counts, p50/p90/p99 and the mean breakdown of *successful* requests (failures show
        in ``status`` and as SLO misses), in seconds. Percentiles are ``None`` when no request succeeded."""
        recs = self.records(app)
        ok = [r for r in recs if r.ok]
        out: dict[str, Any] = {"count": len(recs), "ok": len(ok)}
        if ok:
            lat = np.fromiter((r.latency_s for r in ok), dtype=float, count=len(ok))
            p50, p90, p99 = np.percentile(lat, [50, 90, 99])
            parts = np.array([(r.queue_wait_s, r.cold_start_s, sum(r.exec_s.values()), r.hop_s) for r in ok])
            queue, cold, exe, hop = parts.mean(axis=0)
            out.update(p50_s=float(p50), p90_s=float(p90), p99_s=float(p99), mean_s=float(lat.mean()))
            out["mean_breakdown_s"] = {
                "queue": float(queue),
                "cold": float(cold),
                "exec": float(exe),
                "hop": float(hop),
            }
        else:
            out.update(p50_s=None, p90_s=None, p99_s=None, mean_s=None, mean_breakdown_s=None)
        out["status"] = {str(s): n for s, n in sorted(Counter(r.status for r in recs).items())}
        return out

    def slo_hit_rate(self, app: str, latency_s: float) -> float:
        """Fraction of the app's kept requests that succeeded within ``latency_s``; failures are misses.
        NaN when the window holds no request of the app (no data is not a 0% hit rate)."""
        recs = self.records(app)
        if not recs:
            return float("nan")
        return sum(1 for r in recs if r.ok and r.latency_s <= latency_s) / len(recs)

    def snapshot(self, t: float) -> dict[str, Any]:
        """A JSON-able summary of everything above, for ``shoal status`` and the demo."""
        apps = sorted({r.app for r in self._records})
        return {
            "t": t,
            "prices": self.prices.to_dict(),
            "requests_recorded": self.recorded,
            "window": len(self._records),
            "instances_alive": self.alive(),
            "user_bill": self.user_bill().to_dict(),
            "resource_cost": self.resource_cost(t).to_dict(),
            "latency": self.latency_summary(),
            "apps": {a: self.latency_summary(a) for a in apps},
        }
