"""What a simulation produced: per-request latencies, time series, the bill and the cost, and a JSON summary.

Per-request figures are kept in compact ``array`` columns (8 bytes a value), so a day of millions of requests fits
in memory; times are seconds, the summary shows milliseconds as the CLI does.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shoal.sim.engine import Simulator, _Req

__all__ = ["SimResult"]


class SimResult:
    def __init__(self, slo_s: list[float], apps: list[str]) -> None:
        self.slo_s = slo_s
        self.apps = apps
        self.latency = array("d")
        self.t_arrival = array("d")
        self.deployment = array("i")
        self.status = array("h")
        self._q = self._c = self._e = self._h = 0.0  # summed queue, cold, exec, hop of successful requests
        self.series: dict[str, list[float]] = {
            k: [] for k in ("t", "instances", "gpu_occupancy", "cost_usd", "bill_usd", "done", "slo_hits")
        }
        self._done = 0
        self._hits = 0
        self.totals: dict[str, Any] = {}

    @classmethod
    def empty(cls, sim: Simulator) -> SimResult:
        return cls(list(sim.slo_s), [d.label for d in sim.deployments])

    def add(self, req: _Req, latency_s: float, status: int) -> None:
        self.latency.append(latency_s)
        self.t_arrival.append(req.t0)
        self.deployment.append(req.dep)
        self.status.append(status)
        self._done += 1
        if status == 200:
            if latency_s <= self.slo_s[req.dep]:
                self._hits += 1
            self._q += req.queue_s
            self._c += req.cold_s
            self._e += req.exec_s
            self._h += req.hop_s

    def sample(self, sim: Simulator, now: float) -> None:
        s = self.series
        s["t"].append(now)
        s["instances"].append(sim.live)
        s["gpu_occupancy"].append(sim.cluster.gpu_occupancy())
        s["cost_usd"].append(sim.meter.cost_until(now))
        s["bill_usd"].append(sim.meter.bill_usd())
        s["done"].append(self._done)
        s["slo_hits"].append(self._hits)
        self._done = self._hits = 0

    def finish(self, sim: Simulator, until: float, wall_s: float, arrivals: int) -> None:
        live: dict[str, float] = {}
        cold = unplaced = 0
        for p in sim.all_pools:  # every plan's pools, those switched away from included
            cold += p.cold_starts
            unplaced += p.unplaced
            for inst in p.instances.values():
                live[p.key] = live.get(p.key, 0.0) + until - inst.started_at
        self.sample(sim, until)
        self.totals = {
            "simulated_s": until,
            "wall_s": wall_s,
            "arrivals": arrivals,
            "invocations_per_wall_s": arrivals / wall_s if wall_s > 0 else math.inf,
            "events": sim.kernel.events,
            "cold_starts": cold,
            "placements_refused": unplaced,
            "placements_held_for_other_functions": sim.cluster.refused_for_waiting,
            "instances_alive_at_end": sim.live,
            **sim.meter.summary(live),
        }

    # -- reading --------------------------------------------------------------------------------------------------
    def latencies(self, deployment: int | None = None, ok_only: bool = True) -> np.ndarray:
        lat = np.frombuffer(self.latency, dtype=np.float64) if len(self.latency) else np.zeros(0)
        keep = np.ones(lat.size, dtype=bool)
        if ok_only:
            keep &= np.frombuffer(self.status, dtype=np.int16) == 200 if len(self.status) else keep
        if deployment is not None:
            keep &= np.frombuffer(self.deployment, dtype=np.int32) == deployment
        return lat[keep]

    def slo_hit_rate(self, deployment: int | None = None) -> float:
        """Fraction of finished requests (rejections count as misses) within their app's SLO; NaN with none."""
        if not len(self.latency):
            return math.nan
        lat = np.frombuffer(self.latency, dtype=np.float64)
        ok = np.frombuffer(self.status, dtype=np.int16) == 200
        dep = np.frombuffer(self.deployment, dtype=np.int32)
        slo = np.asarray(self.slo_s)[dep]
        hit = ok & (lat <= slo)
        if deployment is not None:
            sel = dep == deployment
            return float(hit[sel].mean()) if sel.any() else math.nan
        return float(hit.mean())

    def summary(self) -> dict[str, Any]:
        lat = self.latencies()
        status = np.frombuffer(self.status, dtype=np.int16) if len(self.status) else np.zeros(0, np.int16)
        out: dict[str, Any] = {
            "requests_finished": len(self.latency),
            "ok": int((status == 200).sum()),
            "rejected": int((status != 200).sum()),
            "slo_hit_rate": self.slo_hit_rate(),
        }
        if lat.size:
            p50, p90, p99 = np.percentile(lat, [50, 90, 99])
            n_ok = max(1, int((status == 200).sum()))
            out["latency_ms"] = {"p50": p50 * 1e3, "p90": p90 * 1e3, "p99": p99 * 1e3, "mean": lat.mean() * 1e3}
            out["mean_breakdown_ms"] = dict(
                zip(
                    ("queue", "cold", "exec", "hop"),
                    (v / n_ok * 1e3 for v in (self._q, self._c, self._e, self._h)),
                    strict=True,
                )
            )
        else:
            out["latency_ms"] = None
        out.update(self.totals)
        return _jsonable(out)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(x, np.integer):
        return int(x)
    return x
