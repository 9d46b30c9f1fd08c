"""Simulator speed: simulated invocations per second of wall time, against trace length and cluster size.

The workload is the Azure Functions 2019 day sampled to 1,000 functions (``../shared/traces``, 11.6 million
invocations). Each trace function is its own one-stage deployment (its own pool, autoscaler and keep-alive); every
fourth runs a CNN of the GPU table (cycling through its models) on a GPU share of SM 50 % x quota 50 %, the others a
CPU time, lognormal with cv 1, whose mean is the function's average duration in ``1000_run.csv`` capped at 2 s. Each
node has 32 cores, 128 GiB and 4 GPUs of 16 GiB. Ticks every 0.1 s as in the runtime (``--tick`` to change).

    .venv/bin/python benchmarks/sim_speed.py                     # 1 h, 3 h, 6 h of the day on 100 nodes; 1 h on 25..400
    .venv/bin/python benchmarks/sim_speed.py --hours 24 --nodes 100 --skip-cluster-sweep    # the whole day
    .venv/bin/python benchmarks/sim_speed.py --hot     # the per-invocation path alone: 10 functions at 500 req/s
    .venv/bin/python benchmarks/sim_speed.py --functions 250 --hours 1 --skip-cluster-sweep --out sim_speed_f250

Runs on one core (the simulator is single-threaded). Writes ``results/sim_speed.json``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, console, machine_info, save, table

from shoal.app import App, FunctionConfig, Plan
from shoal.sim import ClusterSpec, Deployment, GpuShare, GpuTable, NodeSpec, SimConfig, Simulator, StageModel
from shoal.workload.traces import read_azure_functions_2019

TRACES = ROOT.parent / "shared" / "traces" / "azure-functions-2019-sample"


def fleet(n_functions: int, run_csv: Path, table: GpuTable) -> list[Deployment]:
    means: list[float] = []
    with run_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            means.append(min(2.0, max(0.001, float(row["Average"]) / 1e3)))
    cpu_app = App("cpu_fn", slo="p99:1s")
    cpu_app.stage(lambda x: x, name="work", vcpu=1.0, memory_mb=256)
    gpu_app = App("gpu_fn", slo="p99:200ms")
    gpu_app.stage(lambda x: x, name="work", vcpu=1.0, memory_mb=1024, gpu=0.5, gpu_memory_mb=2048)
    cfg = FunctionConfig(max_instances=50, keep_alive_s=60.0, queue_limit=1000)
    cpu_plan, gpu_plan = Plan.coarse(cpu_app, default=cfg), Plan.coarse(gpu_app, default=cfg)
    models = table.models
    out = []
    for i in range(n_functions):
        if i % 4 == 3:
            model = StageModel.gpu(models[i % len(models)])
            share = {"work": GpuShare(sm=0.5, quota=0.5, memory_mb=2048)}
            out.append(Deployment(gpu_app, gpu_plan, {"work": model}, share, name=f"f{i}"))
        else:
            model = StageModel.cpu(means[i % len(means)], cv=1.0)
            out.append(Deployment(cpu_app, cpu_plan, {"work": model}, name=f"f{i}"))
    return out


def one(trace: Any, deps: list[Deployment], table: GpuTable, hours: float, nodes: int, tick: float) -> dict[str, Any]:
    part = trace.window(0.0, hours * 3600)
    node = NodeSpec(cpus=32, memory_mb=128 * 1024, gpus=4, gpu_memory_mb=16 * 1024)
    sim = Simulator(ClusterSpec.uniform(nodes, node), deps, SimConfig(tick_s=tick), gpu_table=table)
    t0 = time.perf_counter()
    r = sim.run(part.times, part.func, until=hours * 3600)
    wall = time.perf_counter() - t0
    s = r.summary()
    return {
        "hours": hours,
        "nodes": nodes,
        "functions": len(deps),
        "invocations": len(part),
        "wall_s": wall,
        "invocations_per_s": len(part) / wall,
        "events": s["events"],
        "events_per_s": s["events"] / wall,
        "p50_ms": (s["latency_ms"] or {}).get("p50"),
        "p99_ms": (s["latency_ms"] or {}).get("p99"),
        "slo_hit_rate": s["slo_hit_rate"],
        "rejected": s["rejected"],
        "cold_starts": s["cold_starts"],
        "placements_refused": s["placements_refused"],
        "resource_cost_usd": s["resource_cost"]["usd"],
        "user_bill_usd": s["user_bill"]["usd"],
        "max_instances": max(r.series["instances"]),
        "max_gpu_occupancy": max(r.series["gpu_occupancy"]),
    }


def hot(seconds: float, tick: float) -> dict[str, Any]:
    """Arrivals dominate: 10 one-stage CPU functions (10 ms), 500 req/s each, so ticks are a small share."""
    from shoal.workload import generators

    app = App("hot", slo="p99:100ms")
    app.stage(lambda x: x, name="work")
    plan = Plan.coarse(app, default=FunctionConfig(max_instances=100))
    deps = [Deployment(app, plan, {"work": StageModel.cpu(0.01)}, name=f"f{i}") for i in range(10)]
    times = generators.poisson(5000.0, seconds, seed=1)
    which = np.random.default_rng(0).integers(0, 10, times.size)
    sim = Simulator(ClusterSpec.uniform(10), deps, SimConfig(tick_s=tick))
    t0 = time.perf_counter()
    sim.run(times, which, until=seconds)
    wall = time.perf_counter() - t0
    return {"seconds": seconds, "tick_s": tick, "invocations": times.size, "wall_s": wall, "per_s": times.size / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--functions", type=int, default=1000)
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0, 3.0, 6.0])
    ap.add_argument("--nodes", type=int, default=100, help="cluster size for the trace-length sweep")
    ap.add_argument("--cluster-sweep", type=int, nargs="+", default=[25, 100, 400])
    ap.add_argument("--skip-cluster-sweep", action="store_true")
    ap.add_argument("--tick", type=float, default=0.1)
    ap.add_argument("--hot", action="store_true", help="measure only the per-invocation path")
    ap.add_argument("--out", default="sim_speed", help="name of the JSON file under results/")
    args = ap.parse_args()
    if args.hot:
        runs = [hot(s, args.tick) for s in (50.0, 200.0)]
        rows = [[r["seconds"], f"{r['invocations']:,}", f"{r['wall_s']:.2f}", f"{r['per_s']:,.0f}"] for r in runs]
        table(f"simulator hot path, tick {args.tick} s", ["sim s", "invocations", "wall s", "inv/s"], rows)
        save(
            f"{args.out}_hot",
            {"machine": machine_info(), "settings": vars(args), "load": os.getloadavg(), "runs": runs},
        )
        return
    table_ = GpuTable.load()
    t0 = time.perf_counter()
    trace = read_azure_functions_2019(TRACES / "1000_inv.csv")
    console.print(
        f"[dim]read {len(trace):,} arrivals of {len(trace.functions)} functions in {time.perf_counter() - t0:.1f} s[/]"
    )
    n = min(args.functions, len(trace.functions))
    keep = trace.func < n
    from shoal.workload.traces import Trace

    trace = Trace(trace.name, trace.functions[:n], trace.times[keep], trace.func[keep], trace.span_s)
    deps = fleet(n, TRACES / "1000_run.csv", table_)
    runs = [one(trace, deps, table_, h, args.nodes, args.tick) for h in args.hours]
    if not args.skip_cluster_sweep:
        runs += [one(trace, deps, table_, args.hours[0], c, args.tick) for c in args.cluster_sweep if c != args.nodes]
    cols = ["hours", "nodes", "invocations", "wall s", "inv/s", "events/s", "p50 ms", "p99 ms", "SLO hit", "cold"]
    rows = [
        [
            r["hours"],
            r["nodes"],
            f"{r['invocations']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['invocations_per_s']:,.0f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.0f}",
            f"{r['slo_hit_rate']:.3f}",
            r["cold_starts"],
        ]
        for r in runs
    ]
    table(f"simulator speed, {n} functions, tick {args.tick} s", cols, rows)
    save(args.out, {"machine": machine_info(), "settings": vars(args), "load": os.getloadavg(), "runs": runs})


if __name__ == "__main__":
    main()
