"""The simulator's meter: the user bill and the resource cost, with the runtime meter's arithmetic.

Same two figures as ``runtime/meter.py`` (docs/costs.md): the bill is, per function invocation, the per-request fee
plus billed seconds x (vCPU x per_vcpu_s + GiB x per_gib_s + GPU x per_gpu_s); the resource cost is instance
lifetime x the same rates. It keeps per-function running sums only (no per-request records), and a running integral
of the USD rate of live instances so the cost over time is O(1) per instance start or stop.

The price table lives in ``predict/prices.py``, below both the runtime and the simulator in DESIGN.md's layers, so
both meters price with the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from shoal.app import Resources
from shoal.predict.prices import DEFAULT_PRICES

__all__ = ["Prices", "SimMeter", "default_prices"]


class Prices(Protocol):
    per_request: float
    per_vcpu_s: float
    per_gib_s: float
    per_gpu_s: float


def default_prices() -> Prices:
    return DEFAULT_PRICES


@dataclass
class _Fn:
    vcpu: float
    gib: float
    gpu: float
    invocations: int = 0
    billed_s: float = 0.0
    started: int = 0
    lifetime_s: float = 0.0


class SimMeter:
    def __init__(self, prices: Prices | None = None) -> None:
        self.prices = prices or default_prices()
        self._fns: dict[str, _Fn] = {}
        self._rate = 0.0  # USD per second of all live instances
        self._cost = 0.0  # integral of _rate up to _t
        self._t = 0.0

    def register(self, function: str, resources: Resources, gpu: float) -> None:
        """``gpu`` is the device fraction the function's instances hold (sm x quota), which is what is priced."""
        self._fns[function] = _Fn(resources.vcpu, resources.memory_mb / 1024, gpu)

    def _usd_s(self, f: _Fn) -> float:
        p = self.prices
        return f.vcpu * p.per_vcpu_s + f.gib * p.per_gib_s + f.gpu * p.per_gpu_s

    def _advance(self, t: float) -> None:
        if t > self._t:
            self._cost += self._rate * (t - self._t)
            self._t = t

    def instance_started(self, function: str, t: float) -> None:
        f = self._fns[function]
        f.started += 1
        self._advance(t)
        self._rate += self._usd_s(f)

    def instance_stopped(self, function: str, t_start: float, t: float) -> None:
        f = self._fns[function]
        f.lifetime_s += t - t_start
        self._advance(t)
        self._rate -= self._usd_s(f)

    def usd_per_s(self, function: str) -> float:
        """What one live instance of ``function`` costs per second."""
        return self._usd_s(self._fns[function])

    def account(self, function: str) -> _Fn:
        """The running sums of one function, for a caller that adds invocations itself (the engine's hot path)."""
        return self._fns[function]

    def invoked(self, function: str, billed_s: float) -> None:
        f = self._fns[function]
        f.invocations += 1
        f.billed_s += billed_s

    def cost_until(self, t: float) -> float:
        """Resource cost in USD of every instance up to ``t`` (running integral)."""
        self._advance(t)
        return self._cost

    def bill_usd(self) -> float:
        p = self.prices
        return sum(f.invocations * p.per_request + f.billed_s * self._usd_s(f) for f in self._fns.values())

    def summary(self, live_lifetimes: dict[str, float]) -> dict[str, Any]:
        """Bill and cost totals; ``live_lifetimes`` adds, per function, the lifetime of instances still alive."""
        p = self.prices
        bill = {"invocations": 0, "billed_s": 0.0, "vcpu_s": 0.0, "gib_s": 0.0, "gpu_s": 0.0, "usd": 0.0}
        cost = {"instances": 0, "lifetime_s": 0.0, "vcpu_s": 0.0, "gib_s": 0.0, "gpu_s": 0.0, "usd": 0.0}
        for name, f in self._fns.items():
            life = f.lifetime_s + live_lifetimes.get(name, 0.0)
            for acc, s in ((bill, f.billed_s), (cost, life)):
                acc["vcpu_s"] += s * f.vcpu
                acc["gib_s"] += s * f.gib
                acc["gpu_s"] += s * f.gpu
            bill["invocations"] += f.invocations
            bill["billed_s"] += f.billed_s
            cost["instances"] += f.started
            cost["lifetime_s"] += life
        for acc, fee in ((bill, p.per_request * bill["invocations"]), (cost, 0.0)):
            acc["usd"] = fee + acc["vcpu_s"] * p.per_vcpu_s + acc["gib_s"] * p.per_gib_s + acc["gpu_s"] * p.per_gpu_s
        return {"user_bill": bill, "resource_cost": cost}
