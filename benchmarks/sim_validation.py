"""The simulator against the embedded runtime (issue 5, item 4): same apps, plans, loads and settings on both.

For each application the script first profiles it on the runtime (``shoal.runtime.profiler.profile_app``: stage
rows at the declared vCPU share, batch 1, and the data-hop rows) and calibrates the simulator from that profile
(``shoal.sim.calibrate``: lognormal stage times with the profile's busy-time median and CV, dispatch round trip,
cold start = load + measured spawn overhead, hops). Then, for every plan and load, it

- drives the embedded runtime (``shoal.local``) open-loop: the event loop starts each request at its seeded arrival
  time (no HTTP, no client threads), latency is counted from the *scheduled* arrival to the response, and a sampler
  counts live instances (starting + ready) every 50 ms;
- runs the simulator on the same arrival times, with the same plan, ``FunctionConfig`` (keep-alive, max instances),
  windows and tick, on one node whose CPU capacity is the runtime's rule: allocated vCPU <= cores x
  ``cpu_overcommit`` (``policy.placement.fits``); 20 seeds, their median, and their range as a yardstick of
  sampling noise;
- compares p50, p99, SLO hit rate, time-averaged and peak instance count, resource cost (up to the same end time)
  and user bill, as the relative error (sim - runtime) / runtime.

Two synthetic applications, so that stage times are well defined: ``sleepy`` (two stages that sleep a lognormal
time: I/O- or accelerator-bound work, no CPU contention) and ``spin`` (two stages that run a lognormal number of
Python loop iterations: CPU-bound, so instances on shared cores slow each other down, which the simulator does not
model).

    .venv/bin/python benchmarks/sim_validation.py            # about 8 minutes; results/sim_validation.json
    .venv/bin/python benchmarks/sim_validation.py --seconds 8 --only sleepy   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Interference, console, machine_info, save, table, wait_quiet

import shoal
from shoal.app import FunctionConfig, Plan
from shoal.predict import write_profile
from shoal.runtime.errors import ServeError
from shoal.runtime.host import HostConfig
from shoal.runtime.orchestrator import invoke
from shoal.runtime.profiler import ProfileOptions, profile_app
from shoal.sim import ClusterSpec, Deployment, NodeSpec, SimConfig, Simulator, calibrate
from shoal.workload import generators

PRELOAD = ("numpy",)
TICK_S, STABLE_S, PANIC_S = 0.1, 10.0, 2.0
KEEP_ALIVE_S, MAX_INSTANCES = 5.0, 4
OVERCOMMIT = 1.0
DRAIN_S = 3.0  # cost and instances are compared over [0, last arrival time + DRAIN_S]
SIM_SEEDS = tuple(range(1, 21))
ITERS_PER_MS = 20_000  # Python loop iterations per millisecond, roughly, on the development machine

# -- the applications -----------------------------------------------------------------------------------------------
_rngs: dict[int, random.Random] = {}


def _lognormal(median_ms: float, cv: float) -> float:
    """A lognormal draw (ms) from a generator of this process: instances are forked from one zygote, so a module-level
    generator would repeat the same sequence in every instance."""
    rng = _rngs.get(os.getpid())
    if rng is None:
        rng = _rngs[os.getpid()] = random.Random(os.urandom(8))
    return median_ms * math.exp(math.sqrt(math.log1p(cv * cv)) * rng.gauss(0.0, 1.0))


def _spin(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += i
    return acc


def make_sleepy() -> shoal.App:
    app = shoal.App("sleepy", slo="p99:80ms")

    @app.stage(vcpu=0.5, memory_mb=256)
    def fetch(x: Any) -> Any:
        time.sleep(_lognormal(8.0, 0.3) / 1e3)
        return x

    @app.stage(after=fetch, vcpu=0.5, memory_mb=256)
    def infer(x: Any) -> Any:
        time.sleep(_lognormal(30.0, 0.3) / 1e3)
        return x

    return app


def make_spin() -> shoal.App:
    app = shoal.App("spin", slo="p99:30ms")

    @app.stage(vcpu=0.5, memory_mb=256)
    def parse(x: Any) -> Any:
        _spin(int(_lognormal(3.0, 0.3) * ITERS_PER_MS))
        return x

    @app.stage(after=parse, vcpu=0.5, memory_mb=256)
    def score(x: Any) -> Any:
        _spin(int(_lognormal(12.0, 0.3) * ITERS_PER_MS))
        return x

    return app


APPS = {"sleepy": make_sleepy, "spin": make_spin}
# per app: (low Poisson rate, high Poisson rate that makes the autoscaler scale out, MMPP rates (quiet, burst))
RATES = {"sleepy": (10.0, 35.0, (5.0, 50.0)), "spin": (15.0, 60.0, (8.0, 90.0))}
MMPP_DWELL_S = (6.0, 3.0)


def loads(app: str, seconds: float, seed: int) -> dict[str, np.ndarray]:
    low, high, (quiet, burst) = RATES[app]
    return {
        f"poisson {low:g}/s": generators.poisson(low, seconds, seed=seed),
        f"poisson {high:g}/s": generators.poisson(high, seconds, seed=seed + 1),
        f"mmpp {quiet:g}/{burst:g}/s": generators.mmpp((quiet, burst), MMPP_DWELL_S, seconds, seed=seed + 2),
    }


def fn_config() -> FunctionConfig:
    return FunctionConfig(keep_alive_s=KEEP_ALIVE_S, max_instances=MAX_INSTANCES)


def plan_of(app: shoal.App, label: str) -> Plan:
    return Plan.fine(app, default=fn_config()) if label == "fine" else Plan.coarse(app, default=fn_config())


# -- the runtime ----------------------------------------------------------------------------------------------------
async def _drive(svc: Any, app: str, times: np.ndarray, end_s: float) -> dict[str, Any]:
    host = svc.host
    loop = asyncio.get_running_loop()
    dep = host.deployment(app)
    base = loop.time() + 0.3
    out: list[tuple[float, int]] = [(math.nan, 0)] * len(times)

    async def one(i: int, t_sched: float) -> None:
        try:
            await invoke(host, app, 1.0)
            out[i] = (loop.time() - t_sched, 200)
        except ServeError as e:
            out[i] = (loop.time() - t_sched, e.status)

    series: list[tuple[float, int]] = []

    async def sampler() -> None:
        k = 0
        while True:
            await asyncio.sleep(max(0.0, base + k * 0.05 - loop.time()))
            series.append((loop.time() - base, sum(len(p.instances) for p in dep.pools.values())))
            if loop.time() - base >= end_s:
                return
            k += 1

    sampling = loop.create_task(sampler())
    tasks = []
    for i, a in enumerate(times.tolist()):
        delay = base + a - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, base + a)))
    await sampling
    cost = host.meter.resource_cost(host.now()).usd
    await asyncio.gather(*tasks)
    lag = [t - base - a for (t, _), a in zip(series, np.arange(len(series)) * 0.05, strict=True)]
    return {
        "latency_s": [x for x, _ in out],
        "status": [s for _, s in out],
        "instances": [n for _, n in series],
        "cost_usd": cost,
        "bill_usd": host.meter.user_bill().usd,
        "cold_starts": sum(p.cold_starts for p in dep.pools.values()),
        "breakdown_ms": {k: v * 1e3 for k, v in (host.meter.latency_summary(app)["mean_breakdown_s"] or {}).items()},
        "sampler_lag_ms_p99": float(np.percentile(lag, 99) * 1e3) if lag else 0.0,
    }


def run_runtime(app: shoal.App, plan: str, times: np.ndarray, end_s: float) -> dict[str, Any]:
    cfg = HostConfig(
        tick_s=TICK_S,
        stable_window_s=STABLE_S,
        panic_window_s=PANIC_S,
        preload=PRELOAD,
        cpu_overcommit=OVERCOMMIT,
    )
    with shoal.local(app, plan_of(app, plan), cfg) as svc:
        return svc._run(_drive(svc, app.name, times, end_s), timeout=end_s + 120)


# -- the simulator --------------------------------------------------------------------------------------------------
def run_sim(app: shoal.App, plan: str, times: np.ndarray, end_s: float, cal: Any, seed: int) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0))
    cluster = ClusterSpec((NodeSpec(cpus=cores * OVERCOMMIT, memory_mb=1 << 20),), cal.network)
    config = SimConfig(
        tick_s=TICK_S,
        stable_window_s=STABLE_S,
        panic_window_s=PANIC_S,
        cold_start_s=cal.cold_start_s,
        dispatch_s=cal.dispatch_s,
        sample_s=TICK_S,
        seed=seed,
        skip_idle_ticks=False,
    )
    sim = Simulator(cluster, [Deployment(app, plan_of(app, plan), cal.stages)], config)
    res = sim.run(times, until=end_s + 60.0)
    s = res.series
    upto = [i for i, t in enumerate(s["t"]) if t <= end_s + 1e-9]
    lat = np.frombuffer(res.latency, dtype=np.float64)
    return {
        "latency_s": lat.tolist(),
        "status": np.frombuffer(res.status, dtype=np.int16).tolist(),
        "instances": [s["instances"][i] for i in upto],
        "cost_usd": s["cost_usd"][upto[-1]],
        "bill_usd": res.summary()["user_bill"]["usd"],
        "cold_starts": res.totals["cold_starts"],
        "breakdown_ms": res.summary()["mean_breakdown_ms"],
    }


# -- comparing ------------------------------------------------------------------------------------------------------
METRICS = ("p50_ms", "p99_ms", "slo_hit_rate", "mean_instances", "max_instances", "cost_usd", "bill_usd")


def figures(run: dict[str, Any], slo_s: float) -> dict[str, float]:
    lat = np.asarray(run["latency_s"], dtype=np.float64)
    ok = np.asarray(run["status"]) == 200
    good = lat[ok]
    return {
        "requests": int(lat.size),
        "failed": int((~ok).sum()),
        "p50_ms": float(np.percentile(good, 50) * 1e3) if good.size else math.nan,
        "p99_ms": float(np.percentile(good, 99) * 1e3) if good.size else math.nan,
        "slo_hit_rate": float((ok & (lat <= slo_s)).mean()) if lat.size else math.nan,
        "mean_instances": float(np.mean(run["instances"])),
        "max_instances": float(np.max(run["instances"])),
        "cost_usd": float(run["cost_usd"]),
        "bill_usd": float(run["bill_usd"]),
        "cold_starts": int(run["cold_starts"]),
        **{f"{k}_ms": float(v) for k, v in run.get("breakdown_ms", {}).items()},
    }


def rel(sim: float, rt: float) -> float:
    return (sim - rt) / rt if rt else (0.0 if sim == rt else math.inf)


def markdown(doc: dict[str, Any]) -> str:
    """The comparison as a Markdown table: runtime -> simulator (relative error); * where the runtime's figure lies
    outside the simulator's range over its seeds."""
    fmt = {"p50_ms": ".1f", "p99_ms": ".1f", "slo_hit_rate": ".3f", "mean_instances": ".2f", "max_instances": ".0f"}
    head = ["app", "plan", "load", "n", "other cores", "p50 ms", "p99 ms", "SLO hit", "mean inst.", "max inst."]
    head += ["cost (USD 1e-4)", "bill (USD 1e-4)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        cells = [r["app"], r["plan"], r["load"], str(r["requests"]), f"{r['other_cores']:.2f}"]
        for k in METRICS:
            f = fmt.get(k)
            rt, sim = r["runtime"][k], r["sim"][k]
            if f is None:
                rt, sim, f = rt * 1e4, sim * 1e4, ".2f"
            mark = "" if r["runtime_in_seed_range"][k] else "*"
            cells.append(f"{rt:{f}} → {sim:{f}} ({r['rel_error'][k]:+.0%}){mark}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=33.0, help="length of each load")
    ap.add_argument("--only", choices=sorted(APPS), action="append", help="apps to run (default: all)")
    ap.add_argument("--repeats", type=int, default=150, help="profile repeats per stage")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    doc: dict[str, Any] = {
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "seconds": args.seconds,
            "tick_s": TICK_S,
            "stable_window_s": STABLE_S,
            "panic_window_s": PANIC_S,
            "keep_alive_s": KEEP_ALIVE_S,
            "max_instances": MAX_INSTANCES,
            "cpu_overcommit": OVERCOMMIT,
            "drain_s": DRAIN_S,
            "sim_seeds": list(SIM_SEEDS),
            "rates": {a: RATES[a] for a in APPS},
            "mmpp_dwell_s": MMPP_DWELL_S,
        },
        "busy_before": wait_quiet(0.15, patience_s=15.0),
        "apps": {},
        "rows": [],
    }
    t_start = time.monotonic()
    for name in args.only or list(APPS):
        app = APPS[name]()
        opts = ProfileOptions(
            repeats=args.repeats,
            warmup=3,
            vcpus=(0.5,),
            batch_sizes=(1,),
            input_sizes=("medium",),
            plans=("fine",),
            hop_bytes=(1024, 65536),
            preload=PRELOAD,
        )
        with Interference() as inter:
            prof = profile_app(app, lambda size: 1.0, opts, source=f"benchmarks/sim_validation.py:{name}")
        path = write_profile(prof, ROOT / "results" / f"sim_validation_profile_{name}.json")
        cal = calibrate(prof)
        doc["apps"][name] = {
            "profile": str(Path(path).relative_to(ROOT)) if path else None,
            "profile_other_cores": inter.other_cores,
            "calibration": {
                "stages": {
                    s: {"mean_ms": m.mean_s * 1e3, "cv": m.cv, "load_ms": m.load_s * 1e3, "out_bytes": m.output_bytes}
                    for s, m in cal.stages.items()
                },
                "cold_start_ms": cal.cold_start_s * 1e3,
                "dispatch_ms": cal.dispatch_s * 1e3,
                "local_hop_latency_ms": cal.network.local_latency_s * 1e3,
            },
        }
        console.print(f"[bold]{name}[/]: calibration {doc['apps'][name]['calibration']}")
        slo_s = app.slo.latency_s
        for load, times in loads(name, args.seconds, args.seed).items():
            end_s = round(args.seconds + DRAIN_S, 1)
            for plan in ("fine", "coarse"):
                with Interference() as inter:
                    rt = figures(run_runtime(app, plan, times, end_s), slo_s)
                sims = [figures(run_sim(app, plan, times, end_s, cal, seed), slo_s) for seed in SIM_SEEDS]
                sim = {k: statistics.median(s[k] for s in sims) for k in sims[0]}
                # the seeds' range: how far the sampling noise of one run of this many requests reaches
                spread = {k: [min(s[k] for s in sims), max(s[k] for s in sims)] for k in METRICS}
                row = {
                    "app": name,
                    "plan": plan,
                    "load": load,
                    "requests": len(times),
                    "other_cores": inter.other_cores,
                    "runtime": rt,
                    "sim": sim,
                    "sim_seed_spread": spread,
                    "rel_error": {k: rel(sim[k], rt[k]) for k in METRICS},
                    # (1 % of slack: the instance figures of seeds that all did the same differ in the last digit)
                    "runtime_in_seed_range": {k: spread[k][0] * 0.99 <= rt[k] <= spread[k][1] * 1.01 for k in METRICS},
                }
                doc["rows"].append(row)
                err = row["rel_error"]
                console.print(
                    f"{name} {plan:6} {load:18} n={len(times):5} other={inter.other_cores:.2f}  "
                    + "  ".join(f"{k}={rt[k]:.4g}/{sim[k]:.4g} ({err[k]:+.0%})" for k in METRICS)
                    + "  breakdown rt/sim: "
                    + " ".join(
                        f"{b}={rt.get(b + '_ms', math.nan):.1f}/{sim.get(b + '_ms', math.nan):.1f}"
                        for b in ("queue", "cold", "exec", "hop")
                    )
                )
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    save("sim_validation", doc)
    (ROOT / "results" / "sim_validation.md").write_text(markdown(doc))
    rows = []
    for r in doc["rows"]:
        e = r["rel_error"]
        rows.append(
            [
                f"{r['app']} {r['plan']} {r['load']}",
                r["requests"],
                f"{r['other_cores']:.2f}",
                *(f"{r['runtime'][k]:.4g} / {r['sim'][k]:.4g} ({e[k]:+.0%})" for k in METRICS),
            ]
        )
    table("runtime / simulator (relative error)", ["run", "n", "other cores", *METRICS], rows)
    within = {k: sum(abs(r["rel_error"][k]) <= 0.10 for r in doc["rows"]) for k in METRICS}
    in_range = {k: sum(r["runtime_in_seed_range"][k] for r in doc["rows"]) for k in METRICS}
    console.print(f"within 10 %: {within} of {len(doc['rows'])} rows; wall {doc['wall_s']} s")
    console.print(f"runtime inside the simulator's range over {len(SIM_SEEDS)} seeds: {in_range}")


if __name__ == "__main__":
    main()
