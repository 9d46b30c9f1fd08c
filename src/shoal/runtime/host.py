"""The embedded platform on one machine: zygote, pools, placement, the meter and the scaling tick.

Start-up has two steps because of ``fork``: :meth:`Host.prepare` forks the zygote and must run before the process
starts any thread; :meth:`Host.start` then runs on the event loop that will serve requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.app import App, Plan
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
    """An application deployed under a plan: one pool per function."""

    app: App
    plan: Plan
    pools: dict[str, Pool] = field(default_factory=dict)


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

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for dep in self.deployments.values():
            for pool in dep.pools.values():
                pool.close()
        await asyncio.sleep(0)  # let the stop frames go out
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        self.segments.close()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            now = self.now()
            for dep in self.deployments.values():
                for pool in dep.pools.values():
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
            apps.append({"app": dep.app.name, "plan": dep.plan.label, "slo": str(dep.app.slo), "functions": fns})
        return {
            "apps": apps,
            "gpus": [g.name for g in self.gpus],
            "notes": list(self.notes),
            "meter": self.meter.snapshot(self.now()),
        }
