"""Hop cost: an echo chain of two stages, served fine and coarse, carries arrays of growing size; the difference of
the medians is the cost of one function boundary."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from shoal.app import App, FunctionConfig, Plan, Resources, Stage
from shoal.predict import HopPoint, Spread
from shoal.report import fmt_bytes
from shoal.runtime.host import HostConfig
from shoal.runtime.orchestrator import invoke
from shoal.runtime.profiler.groups import identity
from shoal.runtime.profiler.measure import ProfileHost, Run, no_gc

__all__ = ["hop_app", "measure_hops"]


def hop_app(name: str) -> App:
    hop = App(name)
    hop.add(Stage("send", identity, resources=Resources(vcpu=1, memory_mb=128)))
    hop.add(Stage("receive", identity, ("send",), resources=Resources(vcpu=1, memory_mb=128)))
    return hop


async def measure_hops(run: Run, fine_app: App, coarse_app: App) -> list[HopPoint]:
    """One :class:`HopPoint` per size of ``run.opts.hop_bytes``, on one host serving ``fine_app`` fine and
    ``coarse_app`` coarse."""
    opts = run.opts
    cfg = FunctionConfig(min_instances=1, max_instances=1, keep_alive_s=3600.0, timeout_s=opts.timeout_s)
    fine, coarse = Plan.fine(fine_app, default=cfg), Plan.coarse(coarse_app, default=cfg)
    extra = len(fine.functions) - len(coarse.functions)
    assert run.zygote is not None
    host = ProfileHost([(fine_app, fine), (coarse_app, coarse)], HostConfig(preload=opts.preload), run.zygote)
    await host.start()
    rows = []
    try:
        for name in (fine_app.name, coarse_app.name):
            await invoke(host, name, np.zeros(1, np.uint8))
        await asyncio.sleep(opts.settle_s)
        for nbytes in opts.hop_bytes:
            run.step(f"hop  {fmt_bytes(nbytes)}")
            x = (np.arange(nbytes) % 251).astype(np.uint8)
            samples: dict[str, list[float]] = {fine_app.name: [], coarse_app.name: []}
            t_end, done = time.perf_counter() + opts.warmup_s, 0
            while done < opts.warmup or time.perf_counter() < t_end:
                for name in samples:
                    await invoke(host, name, x)
                done += 1
            with no_gc():
                for r in range(opts.repeats * opts.hop_repeat_factor):
                    for name in list(samples) if r % 2 == 0 else list(samples)[::-1]:  # alternate: no drift bias
                        samples[name].append((await invoke(host, name, x)).timing["total_ms"])
            f, c = Spread.of(samples[fine_app.name]), Spread.of(samples[coarse_app.name])
            rows.append(HopPoint(nbytes, round((f.median - c.median) / extra, 4), extra, f, c))
    finally:
        await run.stop(host)
    return rows
