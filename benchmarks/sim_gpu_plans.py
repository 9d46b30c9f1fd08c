"""Fine, coarse and intermediate plans of a multi-model GPU application on a simulated GPU-shared cluster.

The application (``_gpu_apps.detect_classify``) is a detection-and-classification style DAG of models of the GPU table
(``../shared/gpu-profiles/rapp_v100_latency.csv``, V100)::

    preprocess (CPU) -> backbone (resnet50) -> head_a (mobilenet_v2)    -> merge (CPU)
                                            -> head_b (efficientnet_b0) ->

GPU stages declare ``Resources.gpu`` (an SM partition at full time quota, the simulator's default share) and GPU
memory; a function that groups stages gets ``Resources.combine`` of them: the largest GPU (and vCPU) share and the
*sum* of the memories. CPU stages are lognormal times. Plans: fine (5 functions), coarse (1), and two intermediate
groupings. The load is the Azure LLM inference trace 2023 (``conv``, one hour, 19,365 requests), compressed 6x
(10 simulated minutes, about 33 req/s) and rate-scaled 1x, 3x and 6x on top (``Trace.rate_scaled``). Each runs with
two per-function instance caps: 8 (``FunctionConfig``'s default) and 32. The cluster is 4 nodes of 16 cores, 64 GiB
and 2 V100-like GPUs (16 GiB) each; FaST-GShare admission decides what fits. The cluster starts empty.

    .venv/bin/python benchmarks/sim_gpu_plans.py     # 4 plans x 3 loads x 2 caps x 3 seeds: 72 runs, about 2 min
    .venv/bin/python benchmarks/sim_gpu_plans.py --seeds 5 --nodes 8 --max-instances 16

Seeds change the CPU stages' lognormal draws and, above 1x, the offsets of the superposed trace copies. Writes
``results/sim_gpu_plans.json`` and prints a table (median and min-max over seeds; SLO hit rate at the app's SLO and
at a tighter target, rejections counting as misses). Results: BENCHMARKS.md, section 8.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import numpy as np
from _common import ROOT, console, machine_info, save, summary, table
from _gpu_apps import detect_classify, gpu_cluster

from shoal.app import App, FunctionConfig, Plan
from shoal.sim import Deployment, GpuTable, SimConfig, Simulator, StageModel
from shoal.workload.traces import read_azure_llm_2023

TRACE = ROOT.parent / "shared" / "traces" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"

PLANS = {
    "fine": "fine",
    "pre+backbone | heads | merge": "preprocess+backbone,head_a,head_b,merge",
    "pre | backbone+heads+merge": "preprocess,backbone+head_a+head_b+merge",
    "coarse": "coarse",
}


def build_app(slo_ms: float) -> tuple[App, dict[str, StageModel]]:
    """The detect-and-classify DAG of ``_gpu_apps`` (shared with ``granularity_gpu_sim.py``)."""
    return detect_classify(slo_ms)


def one(
    app: App,
    models: dict[str, StageModel],
    plan_text: str,
    times: np.ndarray,
    until: float,
    nodes: int,
    gpus: int,
    seed: int,
    table_: GpuTable,
    cfg: FunctionConfig,
    tight_s: float,
    plan_aware: bool = True,
) -> dict[str, Any]:
    plan = Plan.parse(app, plan_text, default=cfg)
    sim = Simulator(
        gpu_cluster(nodes, gpus),
        [Deployment(app, plan, models)],
        SimConfig(seed=seed, sample_s=1.0, plan_aware_placement=plan_aware),
        gpu_table=table_,
    )
    t0 = time.perf_counter()
    r = sim.run(times, until=until)
    wall = time.perf_counter() - t0
    s = r.summary()
    lat = s["latency_ms"] or {}
    ser = r.series
    ok = r.latencies()
    return {
        "seed": seed,
        "requests": len(times),
        "wall_s": wall,
        "slo_hit_rate": s["slo_hit_rate"],
        # rejections count as misses, as in SimResult.slo_hit_rate
        "slo_hit_rate_tight": float((ok <= tight_s).sum() / max(1, s["requests_finished"])),
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "ok": s["ok"],
        "rejected": s["rejected"],
        # resource cost per thousand requests served (a plan that refuses requests looks cheap in total cost)
        "cost_per_1k_ok_usd": s["resource_cost"]["usd"] / max(1, s["ok"]) * 1e3,
        "breakdown_ms": s.get("mean_breakdown_ms"),
        "resource_cost_usd": s["resource_cost"]["usd"],
        "user_bill_usd": s["user_bill"]["usd"],
        "gpu_s": s["resource_cost"]["gpu_s"],
        "cold_starts": s["cold_starts"],
        "placements_refused": s["placements_refused"],
        "mean_instances": statistics.fmean(ser["instances"]),
        "max_instances": max(ser["instances"]),
        "mean_gpu_occupancy": statistics.fmean(ser["gpu_occupancy"]),
        "max_gpu_occupancy": max(ser["gpu_occupancy"]),
        "functions": [
            {
                "name": f.name,
                "vcpu": f.resources.vcpu,
                "memory_mb": f.resources.memory_mb,
                "gpu": f.resources.gpu,
                "gpu_memory_mb": f.resources.gpu_memory_mb,
            }
            for f in plan.functions
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--gpus", type=int, default=2, help="GPUs per node")
    ap.add_argument("--compress", type=float, default=6.0, help="time compression of the one-hour trace")
    ap.add_argument("--loads", type=float, nargs="+", default=[1.0, 3.0, 6.0], help="rate scales after compression")
    ap.add_argument("--slo-ms", type=float, default=100.0, help="the app's SLO (p99 latency target)")
    ap.add_argument("--tight-slo-ms", type=float, default=70.0, help="a second, tighter latency target to report")
    ap.add_argument(
        "--max-instances", type=int, nargs="+", default=[8, 32], help="per-function caps (8: FunctionConfig's default)"
    )
    ap.add_argument("--keep-alive", type=float, default=60.0)
    ap.add_argument(
        "--placement",
        choices=["plan-aware", "best-fit"],
        default="plan-aware",
        help="GPU placement: the runtime's policy (keeps room for each function's first instance) or plain best fit",
    )
    args = ap.parse_args()
    table_ = GpuTable.load()
    app, models = build_app(args.slo_ms)
    tight = args.tight_slo_ms / 1e3
    base = read_azure_llm_2023(TRACE).compressed(args.compress)
    runs: list[dict[str, Any]] = []
    for cap in args.max_instances:
        cfg = FunctionConfig(max_instances=cap, keep_alive_s=args.keep_alive)
        for load in args.loads:
            for label, text in PLANS.items():
                for seed in range(args.seeds):
                    t = base.rate_scaled(load, seed=seed) if load != 1.0 else base
                    r = one(
                        app,
                        models,
                        text,
                        t.times,
                        t.span_s,
                        args.nodes,
                        args.gpus,
                        seed,
                        table_,
                        cfg,
                        tight,
                        plan_aware=args.placement == "plan-aware",
                    )
                    r.update(cap=cap, load=load, plan=label, plan_groups=text, rate_per_s=len(t) / t.span_s)
                    runs.append(r)
                    console.print(
                        f"[dim]cap {cap} {load:g}x {label:30s} seed {seed}: SLO {r['slo_hit_rate']:.3f}, "
                        f"rejected {r['rejected']}, cost {r['resource_cost_usd']:.3f} USD, wall {r['wall_s']:.1f} s[/]"
                    )
    keys = (
        "slo_hit_rate",
        "slo_hit_rate_tight",
        "p50_ms",
        "p99_ms",
        "resource_cost_usd",
        "user_bill_usd",
        "cost_per_1k_ok_usd",
        "mean_instances",
        "mean_gpu_occupancy",
        "cold_starts",
        "rejected",
        "placements_refused",
    )
    agg = []
    for cap in args.max_instances:
        for load in args.loads:
            for label in PLANS:
                rs = [r for r in runs if r["cap"] == cap and r["load"] == load and r["plan"] == label]
                agg.append(
                    {
                        "cap": cap,
                        "load": load,
                        "plan": label,
                        "rate_per_s": statistics.fmean(r["rate_per_s"] for r in rs),
                        **{k: summary([r[k] for r in rs if r[k] is not None] or [math.nan]) for k in keys},
                    }
                )

    def f(s: dict[str, float], d: int) -> str:
        return f"{s['median']:.{d}f} ({s['min']:.{d}f}-{s['max']:.{d}f})"

    cols = [
        "cap",
        "load",
        "plan",
        "SLO hit",
        "tight hit",
        "p50 ms",
        "p99 ms",
        "cost USD",
        "bill USD",
        "inst.",
        "GPU occ.",
        "rejected",
        "refused",
    ]
    rows = [
        [
            a["cap"],
            f"{a['load']:g}x ({a['rate_per_s']:.0f}/s)",
            a["plan"],
            f(a["slo_hit_rate"], 3),
            f(a["slo_hit_rate_tight"], 3),
            f(a["p50_ms"], 1),
            f(a["p99_ms"], 0),
            f(a["resource_cost_usd"], 3),
            f(a["user_bill_usd"], 3),
            f(a["cost_per_1k_ok_usd"], 4),
            f(a["mean_instances"], 1),
            f(a["mean_gpu_occupancy"], 3),
            f(a["rejected"], 0),
            f(a["placements_refused"], 0),
        ]
        for a in agg
    ]
    table(
        f"plans on {args.nodes} nodes x {args.gpus} V100 (simulated), SLO {args.slo_ms:g} / {args.tight_slo_ms:g} ms",
        cols,
        rows,
    )
    save(
        "sim_gpu_plans" if args.placement == "plan-aware" else "sim_gpu_plans_best_fit",
        {
            "machine": machine_info(),
            "settings": vars(args),
            "trace": str(TRACE.relative_to(ROOT.parent)),
            "stage_models": {k: vars(v) for k, v in models.items()},
            "aggregate": agg,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
