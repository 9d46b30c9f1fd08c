"""``shoal sim``: the runtime's policies in the discrete-event simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shoal.app import AppError, FunctionConfig, Plan, PlanError, SpecError
from shoal.cli._app import cli
from shoal.cli._app import fail as _fail


@cli.command()
def sim(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    trace: Annotated[
        str,
        typer.Option(
            help="A trace CSV (Azure Functions 2019/2021, Azure LLM 2023) or poisson:RATE:SECONDS, "
            "mmpp:LOW:HIGH:SECONDS, diurnal:MEAN:SECONDS, ramp:START:END:SECONDS."
        ),
    ],
    plan: Annotated[str, typer.Option(help="fine | coarse | groups like 'a+b,c'")] = "coarse",
    cluster: Annotated[Path | None, typer.Option(help="Cluster TOML ([[nodes]] count, cpus, memory_gb, gpus ...).")] = (
        None
    ),
    stages: Annotated[
        Path | None, typer.Option(help="Stage-time TOML ([stages.NAME] kind, mean_ms, cv, model ...).")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="A `shoal profile` JSON: stage times, cold start and dispatch from it.")
    ] = None,
    functions: Annotated[int, typer.Option(help="Trace functions to sample; each drives its own copy of the app.")] = 1,
    rate_scale: Annotated[float, typer.Option(help="Multiply the arrival rate (thinning or superposition).")] = 1.0,
    compress: Annotated[float, typer.Option(help="Divide trace time by this (2: twice as fast).")] = 1.0,
    minutes: Annotated[
        float | None, typer.Option(help="Simulate only the first minutes of the (scaled) trace.")
    ] = None,
    keep_alive: Annotated[float, typer.Option(help="Seconds an idle instance stays warm.")] = 60.0,
    max_instances: Annotated[int, typer.Option(help="Most instances per function.")] = 8,
    tick: Annotated[float, typer.Option(help="Autoscaler tick, seconds (the runtime's is 0.1).")] = 0.1,
    gpu_table: Annotated[Path | None, typer.Option(help="GPU latency table (default: ../shared/gpu-profiles).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for summary.json and the PNG plots.")] = Path("sim-report"),
    plots: Annotated[bool, typer.Option(help="Write PNG plots (matplotlib).")] = True,
    output: Annotated[str, typer.Option(help="text | json")] = "text",
) -> None:
    """Simulate an application under a plan and a load on a cluster, with Shoal's own policies (docs/simulator.md)."""
    import numpy as np

    from shoal.app.loader import load_app
    from shoal.sim import ClusterSpec, Deployment, GpuTable, SimConfig, Simulator, read_stage_models
    from shoal.sim.calibrate import read_calibration
    from shoal.sim.cluster import ClusterError
    from shoal.sim.gpu import GpuTableError
    from shoal.sim.model import ModelError
    from shoal.sim.report import report_doc, write_report
    from shoal.workload.source import prepare as prepare_trace
    from shoal.workload.traces import TraceError

    try:
        application = load_app(app)
        cfg = FunctionConfig(keep_alive_s=keep_alive, max_instances=max_instances)
        the_plan = Plan.parse(application, plan, default=cfg)
        spec = ClusterSpec.from_toml(cluster) if cluster else ClusterSpec.uniform(4)
        models, shares = read_stage_models(stages) if stages else ({}, {})
        cal = read_calibration(profile) if profile else None
        models = {**cal.stages, **models} if cal else models  # a --stages entry wins over the profile's
        t = prepare_trace(
            trace, seed=seed, functions=functions, compress=compress, rate_scale=rate_scale, minutes=minutes
        )
        until = t.span_s
        needs_gpu = any(m.kind == "gpu" for m in models.values())
        table = GpuTable.load(gpu_table) if needs_gpu or gpu_table else None
        deps = [
            Deployment(application, the_plan, models, shares, name=f"{application.name}#{i}" if functions > 1 else None)
            for i in range(functions)
        ]
        sample_s = max(tick, until / 400)  # about 400 points on each time plot
        timing = {"cold_start_s": cal.cold_start_s, "dispatch_s": cal.dispatch_s} if cal else {}
        config = SimConfig(tick_s=tick, seed=seed, sample_s=sample_s, **timing)
        simulator = Simulator(spec, deps, config, gpu_table=table)
        result = simulator.run(t.times, np.asarray(t.func), until=until)
    except (AppError, PlanError, SpecError, ClusterError, GpuTableError, ModelError, TraceError, ValueError) as e:
        _fail(str(e))
    meta = {"app": app, "plan": the_plan.label, "trace": trace, "functions": functions, "tick_s": tick}
    if profile:
        meta["profile"] = str(profile)
    if not models:
        meta["note"] = "no --stages file: every stage takes 10 ms of CPU"
    written = write_report(result, out, meta) if plots else []
    doc = report_doc(result, meta)
    if output == "json":
        doc["files"] = [str(p) for p in written]
        typer.echo(json.dumps(doc))
        return
    s = doc["summary"]
    lat = s["latency_ms"] or {}
    typer.echo(f"{application.name} under plan {the_plan.label}: {s['requests_finished']:,} requests finished")
    if lat:
        typer.echo(f"  latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; SLO hit rate {s['slo_hit_rate']:.3f}")
    typer.echo(f"  user bill USD {s['user_bill']['usd']:.4f}, resource cost USD {s['resource_cost']['usd']:.4f}")
    typer.echo(f"  cold starts {s['cold_starts']}, simulated {s['simulated_s']:.0f} s in {s['wall_s']:.2f} s")
    for p in written:
        typer.echo(f"  wrote {p}")
