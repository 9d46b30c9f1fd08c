"""The embedded platform on one machine: zygote, pools, placement, the meter and the scaling tick.

Start-up has two steps because of ``fork``: :meth:`Host.prepare` forks the zygote and must run before the process
starts any thread; :meth:`Host.start` then runs on the event loop that will serve requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import math
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal.app import App, Function, Plan
from shoal.policy.gpu_placement import DeviceLoad, ShareRequest, pick_device
from shoal.policy.placement import fits, place_cpus
from shoal.predict.prices import DEFAULT_PRICES, PriceTable
from shoal.runtime import devices
from shoal.runtime.dataplane import SHM_DIR, SegmentPool
from shoal.runtime.errors import NotFound, Unavailable
from shoal.runtime.memory import keep_freed_memory
from shoal.runtime.meter import Meter
from shoal.runtime.metrics import Metrics
from shoal.runtime.pool import Instance, Pool
from shoal.runtime.zygote import DEFAULT_PRELOAD, Zygote

if TYPE_CHECKING:
    from shoal.runtime.adaptive import AdaptiveLoop

__all__ = ["Deployment", "Host", "HostConfig"]

log = logging.getLogger("shoal.host")


@dataclass(frozen=True)
class HostConfig:
    """Settings of the embedded runtime (per-function settings live in the plan)."""

    tick_s: float = 0.1
    #: Knative's defaults are 60 s and 6 s.
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    max_body_bytes: int = 64 << 20
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    prices: PriceTable = DEFAULT_PRICES
    cpus: tuple[int, ...] | None = None  # cores instances may use; None: all this process may use
    #: Scale-out beyond a function's first instance is admitted only while the vCPU allocated to all instances stays
    #: within cores x this factor (a function's first instance is always admitted, so none can starve).
    cpu_overcommit: float = 1.0


@dataclass
class Deployment:
    """An application deployed under a plan: one pool per function.

    ``active`` counts the requests walking this deployment's DAG. After a plan switch the old deployment is
    ``retired``: it gets no new request, and the pools the new plan does not keep close once ``active`` is 0, so that a
    request that started under the old plan finishes under it.
    """

    app: App
    plan: Plan
    pools: dict[str, Pool] = field(default_factory=dict)
    active: int = 0
    retired: bool = False
    leaving: list[Pool] = field(default_factory=list)  # after a switch: the pools the new plan does not keep


class Host:
    def __init__(self, deployments: Sequence[tuple[App, Plan]], config: HostConfig | None = None) -> None:
        self.config = config or HostConfig()
        self.deployments: dict[str, Deployment] = {}
        for app, plan in deployments:
            if app.name in self.deployments:
                raise ValueError(f"app {app.name!r} is deployed twice")
            if plan.app is not app:
                raise ValueError(f"the plan for {app.name!r} was made for another app ({plan.app.name!r})")
            self.deployments[app.name] = Deployment(app, plan)
        self.cpus = list(self.config.cpus or sorted(os.sched_getaffinity(0)))
        self.cpu_load = dict.fromkeys(self.cpus, 0.0)
        self.meter = Meter(self.config.prices)
        self.metrics = Metrics()
        self.segments = SegmentPool(f"p{os.getpid()}")
        self.instances: dict[str, Instance] = {}
        self.gpus = devices.detect_gpus()
        self._gpu_used: dict[int, float] = {g.index: 0.0 for g in self.gpus}  # sum of shares admitted per device
        self._gpu_memory_used: dict[int, int] = {g.index: 0 for g in self.gpus}
        self._gpu_of: dict[str, tuple[int, float, int]] = {}  # instance id -> (device, share, memory cap)
        self.notes: list[str] = []
        self._switching: set[str] = set()
        self.adaptive: dict[str, AdaptiveLoop] = {}  # app -> its adaptive granularity loop, if any
        #: Recent arrival times per app (host clock), for the adaptive controller's load windows.
        self._arrivals: dict[str, deque[float]] = {name: deque(maxlen=200_000) for name in self.deployments}
        #: Per app and plan label, requests served so far and how many within the SLO (``outcomes``).
        self._outcomes: dict[str, dict[str, tuple[int, int]]] = {name: {} for name in self.deployments}
        self._retired: list[Deployment] = []  # old plans still finishing their requests
        self.zygote: Zygote | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()
        for dep in self.deployments.values():
            for st in dep.app.stages.values():
                if st.resources.gpu > 0 and not self.gpus:
                    self._note(
                        f"stage {dep.app.name}/{st.name} asks for a GPU share of {st.resources.gpu:g}, but this "
                        "machine has no GPU: it runs on CPU"
                    )

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.warning(text)

    # -- life cycle -----------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Fork the zygote. Call before starting any thread in this process."""
        keep_freed_memory()
        if self.zygote is None:
            self.zygote = Zygote({n: d.app for n, d in self.deployments.items()}, self.config.preload)

    async def start(self) -> None:
        self.prepare()
        for dep in self.deployments.values():
            dep.pools = {f.name: Pool(dep.app.name, f, self) for f in dep.plan.functions}
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="shoal-tick")

    def adapt(self, loop: AdaptiveLoop) -> None:
        """Run ``loop`` (adaptive granularity of one app) until the host stops; replaces the app's previous loop."""
        old = self.adaptive.pop(loop.app, None)
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())
        self.adaptive[loop.app] = loop
        loop.start()

    async def stop(self) -> None:
        for loop in self.adaptive.values():
            await loop.stop()
        self.adaptive.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for dep in [*self.deployments.values(), *self._retired]:
            for pool in dep.leaving if dep.retired else dep.pools.values():
                pool.close()
        self._retired.clear()
        await asyncio.sleep(0)  # let the stop frames go out
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        self.segments.close()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            now = self.now()
            for dep in [*self.deployments.values(), *self._retired]:
                for pool in dep.leaving if dep.retired else dep.pools.values():
                    try:
                        pool.tick(now)
                    except Unavailable as e:  # the zygote is gone: said once in the log, and to every request
                        self._note(f"cannot scale {dep.app.name}/{pool.name}: {e.message}")
                    except Exception:  # a bad tick must not stop scaling for everyone
                        log.exception("scaling tick of %s failed", pool.name)
                    self.metrics.set_pool(
                        f"{dep.app.name}/{pool.name}",
                        pool.count("starting"),
                        pool.count("ready"),
                        len(pool.queue),
                        pool.in_flight,
                    )

    # -- what pools ask of the host -------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self._t0

    def place(self, vcpu: float) -> list[int]:
        cores = place_cpus([self.cpu_load[c] for c in self.cpus], vcpu)
        chosen = [self.cpus[i] for i in cores]
        for c in chosen:
            self.cpu_load[c] += vcpu / len(chosen)
        return chosen

    def can_scale_out(self, vcpu: float) -> bool:
        return fits([self.cpu_load[c] for c in self.cpus], vcpu, self.config.cpu_overcommit)

    def unplace(self, cpus: list[int], vcpu: float) -> None:
        for c in cpus:
            self.cpu_load[c] = max(0.0, self.cpu_load[c] - vcpu / len(cpus))

    def gpu_device(self, iid: str, share: float, memory_mb: int) -> int | None:
        """The GPU for instance ``iid``'s ``share`` (FaST-GShare admission, best fit: ``policy.gpu_placement``).

        None when no share is asked or this machine has no GPU (the stage then runs on CPU, as said at start-up).
        Raises Unavailable when every GPU is full: the pool retries on its next tick, as when CPUs are full.
        """
        if share <= 0 or not self.gpus:
            return None
        want = ShareRequest(share, memory_mb)
        loads = [DeviceLoad(self._gpu_used[g.index], self._gpu_memory_used[g.index], g.memory_mb) for g in self.gpus]
        i = pick_device(loads, want)
        if i is None:
            raise Unavailable(
                f"no GPU has room for a share of {share:g} with {memory_mb} MiB (sum of shares per GPU <= 1); "
                "lower max_instances or the share, or add a GPU"
            )
        index = self.gpus[i].index
        self._gpu_used[index] += want.fraction
        self._gpu_memory_used[index] += memory_mb
        self._gpu_of[iid] = (index, want.fraction, memory_mb)
        return index

    def gpu_release(self, iid: str) -> None:
        placed = self._gpu_of.pop(iid, None)
        if placed is not None:
            index, fraction, memory_mb = placed
            self._gpu_used[index] = max(0.0, self._gpu_used[index] - fraction)
            self._gpu_memory_used[index] -= memory_mb

    def spawn(self, spec: dict[str, Any]) -> Any:
        if self.zygote is None:
            raise RuntimeError("Host.prepare() was not called")
        return self.zygote.spawn(spec)

    def instance_started(self, pool: Pool, inst: Instance) -> None:
        self.instances[inst.id] = inst
        self.meter.instance_started(f"{pool.app}/{pool.name}", inst.id, pool.fn.resources, self.now())
        self.metrics.cold_start(f"{pool.app}/{pool.name}")

    def instance_stopped(self, pool: Pool, inst: Instance, died: bool = False) -> None:
        self.instances.pop(inst.id, None)
        self.meter.instance_stopped(inst.id, self.now())
        self.unplace(inst.cpus, pool.fn.resources.vcpu)
        self.gpu_release(inst.id)
        if died:  # a killed instance could not unlink its own segments
            for path in glob.glob(os.path.join(SHM_DIR, f"shoal-{inst.id}-*")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def free_segments(self, names: list[str]) -> None:
        """Return the segments a finished request used to the pools that own them."""
        from shoal.runtime.dataplane import segment_owner

        mine = []
        for name in names:
            owner = segment_owner(name)
            if owner == self.segments.owner:
                mine.append(name)
            else:
                inst = self.instances.get(owner)
                if inst is not None:
                    inst.pending_free.append(name)
        self.segments.free(mine)

    # -- plan switches --------------------------------------------------------------------------------------------
    async def switch_plan(
        self, app: str, plan: Plan, warm: Mapping[str, int] | None = None, ready_timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Serve ``app`` under ``plan`` from now on, without losing or failing a request.

        1. Functions the new plan shares with the old one (same stages, resources and settings) keep their pool,
           warm instances, queue and autoscaler history.
        2. Every other function of the new plan gets a pool with ``warm[name]`` instances started (default: for the
           recent work, ``_warm_count``; at least one), and the switch waits until each new
           pool has at least one ready instance.
        3. New requests then go to the new plan; requests already under way finish on the old pools, which close
           when the last of them is done (``Deployment.active``).

        If a new function cannot get a ready instance within ``ready_timeout_s`` (a model that fails to load, no
        room), the switch is abandoned, its new pools are closed, the old plan keeps serving, and Unavailable says why.
        Only one switch per app runs at a time.
        """
        old = self.deployment(app)
        if plan.app is not old.app:
            raise ValueError(f"the plan was made for app {plan.app.name!r}, not {app!r}")
        if app in self._switching:
            raise Unavailable(f"a plan switch of {app!r} is already under way; retry when it is done")
        self._switching.add(app)
        try:
            return await self._switch(old, plan, warm or {}, ready_timeout_s)
        finally:
            self._switching.discard(app)

    async def _switch(
        self, old: Deployment, plan: Plan, warm: Mapping[str, int], ready_timeout_s: float
    ) -> dict[str, Any]:
        unknown = set(warm) - {f.name for f in plan.functions}
        if unknown:
            raise ValueError(f"warm names functions the plan does not have: {sorted(unknown)}")
        t0 = self.now()
        new = Deployment(old.app, plan)
        kept: list[str] = []
        for f in plan.functions:
            pool = old.pools.get(f.name)
            if pool is not None and (pool.fn.stages, pool.fn.resources, pool.fn.config) == (
                f.stages,
                f.resources,
                f.config,
            ):
                pool.fn = f
                new.pools[f.name] = pool
                kept.append(f.name)
            else:
                new.pools[f.name] = Pool(old.app.name, f, self)
        fresh = [p for name, p in new.pools.items() if name not in kept]
        try:
            for pool in fresh:
                n = warm.get(pool.name, self._warm_count(old, pool.fn))
                for _ in range(max(1, min(n, pool.fn.config.max_instances))):
                    pool.start_instance()
            deadline = t0 + ready_timeout_s
            while any(p.count("ready") == 0 for p in fresh):
                broken = [p for p in fresh if p.last_error is not None and p.count("starting") == 0]
                if broken or self.now() > deadline:
                    why = broken[0].last_error if broken else f"no ready instance after {ready_timeout_s:g} s"
                    raise Unavailable(f"plan switch of {old.app.name!r} to {plan.label!r} abandoned: {why}")
                await asyncio.sleep(0.01)
        except BaseException:
            for pool in fresh:
                pool.close()
            raise
        self.deployments[old.app.name] = new
        old.retired = True
        leaving = [p for name, p in old.pools.items() if new.pools.get(name) is not p]
        old.leaving = leaving
        self._retired.append(old)
        self.drain(old)
        return {
            "app": old.app.name,
            "plan": plan.label,
            "kept": kept,
            "warmed": {p.name: p.count("ready") + p.count("starting") for p in fresh},
            "draining": [p.name for p in leaving],
            "switch_s": round(self.now() - t0, 4),
        }

    def _warm_count(self, old: Deployment, fn: Function) -> int:
        """How many instances of a new function to warm before traffic moves to it.

        The work it will take on: the app's recent arrival rate times the mean execution time of its stages in
        recent requests (busy instances, by Little's law), over the function's target concurrency. At most as many
        as the old plan runs for its stages together (the old plan copes with this load with those: a function that
        merges two stages takes on the work of both pools, which the busier pool's count alone falls short of), at
        least one. Without recent work to go by, as many as the old plan runs for the busiest of its stages.
        Warming by the old plan's count alone would, for a coarse plan at its cap moving to a finer one, start the
        cap of every new function: a burst of cold starts and idle instances billed until the autoscaler scales them
        down.
        """
        overlap = [p for p in old.pools.values() if set(p.fn.stages) & set(fn.stages)]
        counts = [p.count("ready") + p.count("starting") for p in overlap]
        work = self._recent_work(old.app.name, fn.stages)
        if work is None:
            return max(1, max(counts, default=1))
        return max(1, min(sum(counts) or 1, math.ceil(work / fn.target_concurrency)))

    def _recent_work(self, app: str, stages: Sequence[str], horizon_s: float = 10.0) -> float | None:
        """Mean number of requests executing ``stages`` at once over the last ``horizon_s`` (rate x exec time), or
        None when recent requests did not time all of those stages."""
        now = self.now()
        recent = [r for r in self.meter.records(app) if r.ok and r.t_arrival > now - horizon_s]
        if not recent:
            return None
        if any(s not in recent[-1].exec_s for s in stages):
            return None
        busy = sum(sum(r.exec_s.get(s, 0.0) for s in stages) for r in recent)
        return busy / min(horizon_s, max(1e-3, now - recent[0].t_arrival))

    def drain(self, dep: Deployment) -> None:
        """Close a retired deployment's pools once no request walks it any more (called as requests finish)."""
        if dep.retired and dep.active == 0 and dep in self._retired:
            self._retired.remove(dep)
            for pool in dep.leaving:
                pool.close()
            dep.leaving = []

    def note_arrival(self, app: str) -> None:
        self._arrivals[app].append(self.now())

    def note_served(self, app: str, plan: str, latency_s: float, status: int) -> None:
        """A request of ``app`` finished on ``plan``: counted for ``outcomes`` (a client's bad input, a 4xx other
        than 429, says nothing of the plan and is not)."""
        if 400 <= status < 500 and status != 429:
            return
        dep = self.deployment(app)
        n, hits = self._outcomes[app].get(plan, (0, 0))
        self._outcomes[app][plan] = (n + 1, hits + int(status == 200 and latency_s <= dep.app.slo.latency_s))

    def outcomes(self, app: str) -> dict[str, tuple[int, int]]:
        """Per plan label, the requests of ``app`` it has served since the start and how many within the SLO: a loop
        that reads it twice knows what each plan served in between (``policy.served``'s SLO trials)."""
        self.deployment(app)  # NotFound for an unknown app
        return dict(self._outcomes[app])

    def cost_rate(self, app: str) -> float:
        """USD per second of the live instances of the app's current plan: what staying on it costs from now until
        its autoscalers change it (a retired plan's draining instances are not counted)."""
        return self.meter.cost_rate(f"{app}/{name}" for name in self.deployment(app).pools)

    def spent(self, app: str) -> float:
        """USD the functions of the app's current plan have cost so far, live instances up to now (a plan's
        function that served before, under an earlier switch, counts from then too): a loop that reads it twice on
        the same plan meters what the plan cost in between."""
        names = {f"{app}/{name}" for name in self.deployment(app).pools}
        per_function = self.meter.resource_cost(self.now()).per_function
        return sum(u.usd for f, u in per_function.items() if f in names)

    def seed_arrivals(self, app: str, times: Sequence[float]) -> None:
        """Arrivals from before this host served ``app`` (host clock, so negative before its start; oldest first):
        a restarted server's past (``runtime.arrival_log``), for its adaptive loop's look-back. They go before the
        arrivals seen since; the newest are kept where the two exceed the ring's length."""
        self.deployment(app)  # NotFound for an unknown app
        seen = self._arrivals[app]
        first = seen[0] if seen else self.now()
        earlier = [float(t) for t in times if t < first]
        if earlier != sorted(earlier):
            raise ValueError("seed_arrivals takes arrival times oldest first")
        self._arrivals[app] = deque([*earlier, *seen], maxlen=seen.maxlen)

    def arrivals_of(self, app: str) -> list[float]:
        """Arrival times (host clock) of the app's most recent requests, oldest first."""
        return list(self._arrivals[app])

    # -- reading --------------------------------------------------------------------------------------------------
    def deployment(self, app: str) -> Deployment:
        dep = self.deployments.get(app)
        if dep is None:
            raise NotFound(f"no application named {app!r}; deployed: {', '.join(self.deployments) or 'none'}")
        return dep

    def status(self) -> dict[str, Any]:
        apps = []
        for dep in self.deployments.values():
            fns = []
            for f in dep.plan.functions:
                pool = dep.pools.get(f.name)
                insts = list(pool.instances.values()) if pool else []
                fns.append(
                    {
                        "function": f.name,
                        "stages": list(f.stages),
                        "resources": vars(f.resources) | {},
                        "desired": pool.desired if pool else 0,
                        "panic": pool.panic if pool else False,
                        "capacity_limited": pool.capacity_limited if pool else False,
                        "queued": len(pool.queue) if pool else 0,
                        "in_flight": pool.in_flight if pool else 0,
                        "cold_starts": pool.cold_starts if pool else 0,
                        "last_error": pool.last_error if pool else None,
                        "instances": [
                            {
                                "id": i.id,
                                "pid": i.pid,
                                "state": i.state,
                                "in_flight": i.in_flight,
                                "cpus": i.cpus,
                                "load_ms": round(i.load_s * 1e3, 2),
                                "idle_s": round(self.now() - i.idle_since, 2) if i.in_flight == 0 else 0.0,
                            }
                            for i in insts
                        ],
                    }
                )
            draining = [p.name for old in self._retired if old.app is dep.app for p in old.leaving]
            apps.append(
                {
                    "app": dep.app.name,
                    "plan": dep.plan.label,
                    "slo": str(dep.app.slo),
                    "functions": fns,
                    "draining": draining,
                    "adaptive": self.adaptive[dep.app.name].history[-20:] if dep.app.name in self.adaptive else None,
                }
            )
        return {
            "apps": apps,
            "gpus": [g.name for g in self.gpus],
            "notes": list(self.notes),
            "meter": self.meter.snapshot(self.now()),
        }
