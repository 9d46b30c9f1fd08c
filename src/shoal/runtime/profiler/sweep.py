"""``profile_app``: the whole sweep, from the reference values through every point and the hops to the profile."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from shoal.app import App, Plan
from shoal.predict import AppInfo, GpuPoint, HopPoint, Point, Profile, Settings, StageInfo, read_gpu_table, table_model
from shoal.runtime.profiler.groups import make_groups
from shoal.runtime.profiler.hops import hop_app, measure_hops
from shoal.runtime.profiler.machine import OtherWork, cpu_reference_ms, machine_info
from shoal.runtime.profiler.measure import Run, make_jobs
from shoal.runtime.profiler.options import InputsFn, OnPoint, ProfileOptions, ProfilerError
from shoal.runtime.profiler.targets import reference_values
from shoal.runtime.zygote import Zygote

__all__ = ["profile_app"]


def profile_app(
    app: App,
    inputs: InputsFn | None,
    options: ProfileOptions | None = None,
    *,
    gpu_models: Mapping[str, str] | None = None,
    source: str = "",
    inputs_source: str = "inputs()",
    on_point: OnPoint | None = None,
) -> Profile:
    """Measure ``app`` on the embedded runtime and return its :class:`Profile`.

    ``inputs(size)`` returns the application's input for each of ``options.input_sizes``; ``gpu_models`` maps stage
    names to models of the GPU table (``options.gpu_table``). Call it from a process that has started no thread of
    its own yet if you can: the runtime forks its zygote first.
    """
    opts = options or ProfileOptions()
    app.validate()
    if inputs is None:
        raise ProfilerError(
            f"no inputs to profile {app.name!r} with: define `def profile_inputs(size: str) -> Any` in the app's "
            f"file, returning an input for each of {', '.join(opts.input_sizes)} (see docs/profiles.md)"
        )
    groups = make_groups(app, opts.plans)
    hop_fine, hop_coarse = hop_app("profile-hop-fine"), hop_app("profile-hop-coarse")
    apps = {g.app.name: g.app for g in groups} | {hop_fine.name: hop_fine, hop_coarse.name: hop_coarse}
    machine = machine_info()
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # Fork the zygote before this process runs any model (whose libraries start threads) or starts a thread.
    zygote = Zygote(apps, opts.preload)
    try:
        run = Run(opts, {}, on_point)
        run.zygote = zygote
        run.values = reference_values(app, inputs, opts.input_sizes, run.notes)
        jobs = make_jobs(groups, opts)
        run.total = sum(len(j.batches) for j in jobs) * len(run.values) + (len(opts.hop_bytes) if opts.hop_bytes else 0)

        run.other = OtherWork([os.getpid(), zygote.pid])

        async def measure() -> tuple[list[Point], list[HopPoint]]:
            points = [p for j in jobs for p in await run.job(j)]
            hops = await measure_hops(run, hop_fine, hop_coarse) if opts.hop_bytes else []
            return points, hops

        points, hops = asyncio.run(measure())
    finally:
        zygote.close()
    if any(v < 1 for v in opts.vcpus):
        run.notes.append(
            "vCPU shares below 1 are pinned to a whole core but not held to a quota: they measure as 1 vCPU"
        )
    machine["other_work_cores"] = run.other.cores() if run.other is not None else 0.0
    # optional fields (older profiles lack them): what shoal.sim.calibrate reads for the platform's CPU work per call
    # and for the speed of these cores
    if run.parent_cpu_ms:
        machine["platform_cpu_ms"] = round(statistics.median(run.parent_cpu_ms), 4)
    machine["cpu_reference_ms"] = cpu_reference_ms()
    if machine["other_work_cores"] > 0.1:
        run.notes.append(
            f"other processes kept {machine['other_work_cores']:.2f} cores busy on average while this profile was "
            "measured: expect more spread than on a quiet machine"
        )
    stage_rows = tuple(p for p in points if p.kind == "stage")
    fn_rows = tuple(
        replace(p, plan=label)
        for p in points
        if p.kind == "function"
        for label in next(g.plans for g in groups if g.kind == "function" and g.stages == p.stages)
    )
    gpu = _gpu_rows(app, gpu_models or {}, opts.gpu_table, run.notes)
    settings = Settings(
        repeats=opts.repeats,
        warmup=opts.warmup,
        vcpus=tuple(float(v) for v in opts.vcpus),
        batch_sizes=tuple(opts.batch_sizes),
        input_sizes=tuple(run.values),
        plans=tuple(Plan.parse(app, t).label for t in opts.plans),
        hop_bytes=tuple(opts.hop_bytes),
        inputs=inputs_source,
    )
    info = AppInfo(
        name=app.name,
        slo=str(app.slo),
        source=source,
        stages=tuple(
            StageInfo(
                s.name,
                s.after,
                s.batch,
                s.resources.vcpu,
                s.resources.memory_mb,
                s.resources.gpu,
                s.resources.gpu_memory_mb,
                s.resources.max_concurrency,
            )
            for s in app.stages.values()
        ),
    )
    return Profile(created, machine, info, settings, stage_rows, fn_rows, tuple(hops), tuple(gpu), tuple(run.notes))


def _gpu_rows(app: App, models: Mapping[str, str], table: Path | None, notes: list[str]) -> list[GpuPoint]:
    wanted: dict[str, str] = {}
    for stage, name in models.items():
        if stage not in app.stages:
            notes.append(f"GPU model {name!r} is given for {stage!r}, which is not a stage of {app.name!r}")
            continue
        model = table_model(name)
        if model is None:
            notes.append(f"stage {stage} ({name}) has no counterpart in the GPU table: no GPU rows")
        else:
            wanted[stage] = model
    if not wanted:
        return []
    if table is None:
        notes.append("no GPU table (--gpu-table): no GPU rows for " + ", ".join(sorted(wanted)))
        return []
    rows, more = read_gpu_table(table, wanted)
    notes.extend(more)
    return rows
