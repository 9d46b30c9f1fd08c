"""Measuring points on the runtime: one host per job, with the profiler's zygote, warm-up, then repeats."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoal.app import App, FunctionConfig, Plan, Resources
from shoal.predict import Point, Spread
from shoal.runtime.errors import ServeError
from shoal.runtime.host import Host, HostConfig
from shoal.runtime.orchestrator import Result, invoke
from shoal.runtime.pool import Instance
from shoal.runtime.profiler.groups import Group
from shoal.runtime.profiler.machine import OtherWork, data_bytes, peak_rss_mb, process_cpu_s, reset_peak_rss
from shoal.runtime.profiler.options import OnPoint, ProfileOptions
from shoal.runtime.zygote import Zygote

__all__ = ["Job", "ProfileHost", "Run", "make_jobs", "no_gc"]


class ProfileHost(Host):
    """A host that borrows the profiler's zygote: one zygote (forked once, before any thread) serves every host."""

    def __init__(self, deployments: Sequence[tuple[App, Plan]], config: HostConfig, zygote: Zygote) -> None:
        super().__init__(deployments, config)
        self.zygote = zygote

    async def stop(self) -> None:
        self.zygote = None  # the profiler closes it once, at the end
        await super().stop()


def _tile(value: Any, b: int) -> Any:
    """``value`` with every array repeated ``b`` times along its first axis (None if a leaf is not such an array)."""
    if b == 1:
        return value
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return np.concatenate([value] * b)
    if isinstance(value, list):
        parts = [_tile(v, b) for v in value]
        return None if any(p is None for p in parts) else parts
    return None


@dataclass
class Job:
    group: Group
    vcpu: float
    batches: tuple[int, ...]
    max_batch_size: int  # of the function's config: > 1 only for function batching by requests


class Run:
    """One profiling run: the shared zygote, the inputs, progress, notes."""

    def __init__(self, opts: ProfileOptions, values: dict[str, dict[str, Any]], on_point: OnPoint | None) -> None:
        self.opts = opts
        self.values = values
        self.on_point = on_point
        self.notes: list[str] = []
        self.done = 0
        self.total = 0
        self.zygote: Zygote | None = None
        self.other: OtherWork | None = None
        #: The parent's CPU time per call (ms) of every stage point: the platform's own work on a call.
        self.parent_cpu_ms: list[float] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def step(self, label: str) -> None:
        if self.on_point is not None:
            self.on_point(self.done, self.total, label)
        self.done += 1

    async def stop(self, host: Host) -> None:
        for inst in host.instances.values():
            if self.other is not None:
                self.other.instance_ends(inst.pid)
        await host.stop()

    async def call(self, host: Host, app: str, payload: Any, n: int) -> list[Result]:
        if n == 1:
            return [await invoke(host, app, payload)]
        return list(await asyncio.gather(*(invoke(host, app, payload) for _ in range(n))))

    async def job(self, job: Job) -> list[Point]:
        g, opts = job.group, self.opts
        base = Resources.combine([g.app[s].resources for s in g.stages])
        res = Resources(vcpu=job.vcpu, memory_mb=base.memory_mb, max_concurrency=1)
        cfg = FunctionConfig(
            resources=res,
            min_instances=1,
            max_instances=1,
            keep_alive_s=3600.0,
            timeout_s=opts.timeout_s,
            max_batch_size=job.max_batch_size,
            max_batch_wait_s=1.0 if job.max_batch_size > 1 else 0.0,
        )
        plan = Plan(g.app, [list(g.app.stages)], default=cfg, label=g.plans[0])
        assert self.zygote is not None
        host = ProfileHost([(g.app, plan)], HostConfig(preload=opts.preload), self.zygote)
        await host.start()
        points: list[Point] = []
        try:
            with contextlib.suppress(ServeError):  # a failing point says so below
                first = g.payload(next(iter(self.values.values())))
                await self.call(host, g.app.name, first, job.max_batch_size)  # a full batch: no batching wait
                await asyncio.sleep(opts.settle_s)
            for b in job.batches:
                for size, values in self.values.items():
                    p = await self.point(host, job, b, size, values)
                    if p is not None:
                        points.append(p)
        finally:
            await self.stop(host)
        return points

    async def sample(
        self, host: Host, app: str, payload: Any, n: int
    ) -> tuple[Instance, list[float], list[float], list[Result], float | None]:
        """Warm up, then measure: the instance, latencies and busy times (ms), the last call's results, and the
        instance's mean CPU time per repeat (ms; None where /proc cannot tell)."""
        t_end, done = time.perf_counter() + self.opts.warmup_s, 0
        while done < self.opts.warmup or time.perf_counter() < t_end:
            await self.call(host, app, payload, n)
            done += 1
        inst = _the_instance(host)
        if not reset_peak_rss(inst.pid or 0):
            self.note("cannot reset an instance's peak memory (/proc/PID/clear_refs): peak_rss_mb is since its start")
        lat, busy, rs = [], [], []
        cpu0 = time.process_time()  # this process: the event loop, orchestrator and framing of every call
        inst0 = process_cpu_s(inst.pid or 0)
        for _ in range(self.opts.repeats):
            rs = await self.call(host, app, payload, n)
            lat.append(max(r.timing["total_ms"] for r in rs))
            busy.append(sum(f["busy_ms"] * f["batch"] for f in rs[0].timing["functions"].values()))
        if n == 1:
            self.parent_cpu_ms.append((time.process_time() - cpu0) * 1e3 / self.opts.repeats)
        inst1 = process_cpu_s(inst.pid or 0)
        inst_ms = None if inst0 is None or inst1 is None else round((inst1 - inst0) * 1e3 / self.opts.repeats, 4)
        return inst, lat, busy, rs, inst_ms

    async def point(self, host: Host, job: Job, b: int, size: str, values: Mapping[str, Any]) -> Point | None:
        g = job.group
        by_rows = g.kind == "stage"
        self.step(f"{g.kind} {g.name}  vcpu {job.vcpu:g}  batch {b}  {size}")
        payload = _tile(g.payload(values), b) if by_rows else g.payload(values)
        if payload is None:
            self.notes.append(f"stage {g.name}: its input is not an array, so batch {b} cannot be sent as rows")
            return None
        n = 1 if by_rows else b
        try:
            with no_gc():
                inst, lat, busy, rs, cpu_ms = await self.sample(host, g.app.name, payload, n)
        except ServeError as e:
            self.notes.append(f"{g.kind} {g.name} at vcpu {job.vcpu:g}, batch {b}, {size}: {e}; point skipped")
            return None
        rss = peak_rss_mb(inst.pid or 0)
        return Point(
            kind=g.kind,
            name=g.name,
            plan=g.plans[0],
            stages=g.stages,
            vcpu=job.vcpu,
            batch=b,
            batching="rows" if by_rows else "requests",
            input_size=size,
            input_bytes=data_bytes(payload),
            latency_ms=Spread.of(lat),
            busy_ms=Spread.of(busy),
            output_bytes=data_bytes(rs[0].output),
            load_ms=round(inst.load_s * 1e3, 3),
            cold_start_ms=round(((inst.ready_at or inst.started_at) - inst.started_at) * 1e3, 3),
            peak_rss_mb=round(rss, 2) if rss is not None else 0.0,
            cpu_ms=cpu_ms,
        )


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """No garbage collection in this process while measuring (as ``timeit`` does): a pass can take milliseconds.
    (Collecting first is worse: the next requests run with cold caches.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _the_instance(host: Host) -> Instance:
    ready = [i for i in host.instances.values() if i.state == "ready"]
    if len(ready) != 1:
        raise ServeError(f"expected one ready instance, found {len(ready)}")
    return ready[0]


def make_jobs(groups: Sequence[Group], opts: ProfileOptions) -> list[Job]:
    jobs = []
    for g in groups:
        for v in opts.vcpus:
            if not g.batches:
                jobs.append(Job(g, v, (1,), 1))
            elif g.kind == "stage":
                jobs.append(Job(g, v, tuple(opts.batch_sizes), 1))
            else:  # batching by requests: the function's max_batch_size is the batch size, one host each
                jobs.extend(Job(g, v, (b,), b) for b in opts.batch_sizes)
    return jobs
