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
Python loop iterations: CPU-bound, so instances on shared cores slow each other down; each stage reports its own
thread CPU time, so that the driver can tell a slower stage from one that waited for a core).

The simulator runs four CPU models (``SIM_MODELS``): none (the default), contention from the profile alone
(``shoal.sim.cpu``: pinned instances, processor sharing, the platform's per-call CPU work measured by the
profiler), that plus the other work measured on the node while the runtime ran (other processes' CPU time less the
instances' own stage CPU time, as ``NodeSpec.background_cores``; the table's model), and that plus the speed of the
cores against the profile's (the CPU reference loop in a child process every 0.25 s, as ``NodeSpec.cpu_speed``).
``--resim RUN.json`` runs the models again on a saved run's runtime figures.

    .venv/bin/python benchmarks/sim_validation.py            # about 8 minutes; results/sim_validation.json
    .venv/bin/python benchmarks/sim_validation.py --seconds 8 --only sleepy   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
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
from shoal.sim import ClusterSpec, Deployment, NodeSpec, SimConfig, Simulator, StageModel, calibrate
from shoal.sim.calibrate import Calibration
from shoal.sim.cluster import Network
from shoal.workload import generators

PRELOAD = ("numpy",)
TICK_S, STABLE_S, PANIC_S = 0.1, 10.0, 2.0
KEEP_ALIVE_S, MAX_INSTANCES = 5.0, 4
OVERCOMMIT = 1.0
DRAIN_S = 3.0  # cost and instances are compared over [0, last arrival time + DRAIN_S]
SIM_SEEDS = tuple(range(1, 21))
#: The simulator's CPU models compared: "plain", none (the default: stage times as profiled); "pinned", CPU
#: contention (shoal.sim.cpu: instances pinned to cores as the runtime pins them, processor sharing of each core, the
#: platform's per-call CPU work from the profile); "pinned+node", that and what was measured of the node during the
#: run: other work on it (NodeSpec.background_cores) and its cores' speed against the profile's
#: (NodeSpec.cpu_speed, from the CPU reference loop); "pinned+bg", the same without the speed.
SIM_MODELS = ("plain", "pinned", "pinned+bg", "pinned+node")
#: The model of the table's simulator column: "pinned+node" without the speed, which did not predict the stages' CPU
#: time on this machine (BENCHMARKS.md, section 7).
MAIN_MODEL = "pinned+bg"
REFERENCE_PERIOD_S = 0.25
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


def _spin(n: int) -> float:
    """Run ``n`` loop iterations; the thread's CPU time (ms) they took. The stage passes it on, so that the driver can
    tell a stage that ran slower (CPU time grew) from one that waited for a core (wall time grew, CPU time did not)."""
    c0 = time.thread_time()
    acc = 0
    for i in range(n):
        acc += i
    return (time.thread_time() - c0) * 1e3


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
        return [_spin(int(_lognormal(3.0, 0.3) * ITERS_PER_MS))]

    @app.stage(after=parse, vcpu=0.5, memory_mb=256)
    def score(x: Any) -> Any:
        return [*x, _spin(int(_lognormal(12.0, 0.3) * ITERS_PER_MS))]

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
    cpu_ms: list[float] = []  # spin: the stages' own CPU time per request

    async def one(i: int, t_sched: float) -> None:
        try:
            res = await invoke(host, app, 1.0)
            out[i] = (loop.time() - t_sched, 200)
            if isinstance(res.output, list):
                cpu_ms.append(sum(res.output))
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
        "breakdown_ms": {
            **{k: v * 1e3 for k, v in (host.meter.latency_summary(app)["mean_breakdown_s"] or {}).items()},
            **({"exec_cpu": statistics.fmean(cpu_ms)} if cpu_ms else {}),
        },
        "stage_cpu_s": sum(cpu_ms) / 1e3,
        "sampler_lag_ms_p99": float(np.percentile(lag, 99) * 1e3) if lag else 0.0,
    }


_MONITOR = f"""
import time
from shoal.runtime.profiler.machine import cpu_reference_ms
while True:
    print(cpu_reference_ms(5), flush=True)
    time.sleep({REFERENCE_PERIOD_S})
"""


class SpeedMonitor:
    """The CPU reference loop (``shoal.runtime.profiler.machine.cpu_reference_ms``, median of 5 back to back, as the
    profiler's is of 30: the first after a sleep runs on cold caches) every 0.25 s in a child process while the
    runtime runs: how fast the cores ran Python code meanwhile (about 3 % of a core)."""

    def __enter__(self) -> SpeedMonitor:
        self.proc = subprocess.Popen([sys.executable, "-c", _MONITOR], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self.samples = [float(x) for x in out.split()]
        self.median_ms = statistics.median(self.samples) if self.samples else None


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
def run_sim(
    app: shoal.App,
    plan: str,
    times: np.ndarray,
    end_s: float,
    cal: Any,
    seed: int,
    model: str,
    node_env: tuple[float, float],
) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0))
    node = NodeSpec(cpus=cores * OVERCOMMIT, memory_mb=1 << 20)
    if model != "plain":
        node = NodeSpec(
            cpus=cores * OVERCOMMIT,
            memory_mb=1 << 20,
            cpu_contention=True,
            shared_cores=float(cores),
            platform_cpu_ms=cal.platform_cpu_s * 1e3,
            cpu_speed=node_env[0] if model == "pinned+node" else 1.0,
            background_cores=node_env[1] if model in ("pinned+bg", "pinned+node") else 0.0,
        )
    cluster = ClusterSpec((node,), cal.network)
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
        "stage_cpu_s": float(run.get("stage_cpu_s", 0.0)),
    }


def rel(sim: float, rt: float) -> float:
    return (sim - rt) / rt if rt else (0.0 if sim == rt else math.inf)


def markdown(doc: dict[str, Any]) -> str:
    """The comparison as a Markdown table: runtime -> simulator (relative error); * where the runtime's figure lies
    outside the simulator's range over its seeds."""
    fmt = {"p50_ms": ".1f", "p99_ms": ".1f", "slo_hit_rate": ".3f", "mean_instances": ".2f", "max_instances": ".0f"}
    head = ["app", "plan", "load", "n", "other cores", "bg cores", "speed", "p50 ms", "p99 ms", "SLO hit", "mean inst."]
    head += ["max inst.", "cost (USD 1e-4)", "bill (USD 1e-4)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        cells = [r["app"], r["plan"], r["load"], str(r["requests"]), f"{r['other_cores']:.2f}"]
        cells += [f"{r['background_cores']:.2f}", f"{r['cpu_speed']:.3f}"]
        for k in METRICS:
            f = fmt.get(k)
            rt, sim = r["runtime"][k], r["sim"][k]
            if f is None:
                rt, sim, f = rt * 1e4, sim * 1e4, ".2f"
            mark = "" if r["runtime_in_seed_range"][k] else "*"
            cells.append(f"{rt:{f}} → {sim:{f}} ({r['rel_error'][k]:+.0%}){mark}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "p50 and p99 error of each simulator CPU model:", ""]
    lines += ["| app | plan | load | " + " | ".join(f"{m} p50 | {m} p99" for m in SIM_MODELS) + " |"]
    lines += ["|" + "---|" * (3 + 2 * len(SIM_MODELS))]
    for r in doc["rows"]:
        errs = [r["models"][m]["rel_error"] for m in SIM_MODELS]
        cells = [r["app"], r["plan"], r["load"], *(f"{e[k]:+.0%}" for e in errs for k in ("p50_ms", "p99_ms"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(
    app: shoal.App, plan: str, times: np.ndarray, end_s: float, cal: Any, env: tuple[float, float], rt: dict
) -> dict[str, Any]:
    """The simulator's figures for one row under every CPU model, against the runtime's ``rt``."""
    slo_s = app.slo.latency_s
    by_model = {}
    for model in SIM_MODELS:
        by_model[model] = [figures(run_sim(app, plan, times, end_s, cal, s, model, env), slo_s) for s in SIM_SEEDS]
    sims = by_model[MAIN_MODEL]
    sim = {k: statistics.median(s[k] for s in sims) for k in sims[0]}
    # the seeds' range: how far the sampling noise of one run of this many requests reaches
    spread = {k: [min(s[k] for s in sims), max(s[k] for s in sims)] for k in METRICS}
    return {
        "sim_model": MAIN_MODEL,
        "sim": sim,
        "sim_seed_spread": spread,
        "rel_error": {k: rel(sim[k], rt[k]) for k in METRICS},
        # (1 % of slack: the instance figures of seeds that all did the same differ in the last digit)
        "runtime_in_seed_range": {k: spread[k][0] * 0.99 <= rt[k] <= spread[k][1] * 1.01 for k in METRICS},
        # every model's median and relative error, for the comparison of the models
        "models": {
            m: {
                "sim": (med := {k: statistics.median(s[k] for s in runs) for k in runs[0]}),
                "rel_error": {k: rel(med[k], rt[k]) for k in METRICS},
            }
            for m, runs in by_model.items()
        },
    }


def calibration_of(d: dict[str, Any]) -> Calibration:
    """The calibration a run saved (its ``apps.*.calibration``), rebuilt for :func:`resimulate`."""
    stages = {
        s: StageModel.cpu(
            m["mean_ms"] / 1e3,
            cv=m["cv"],
            cpu_fraction=m.get("cpu_fraction", 1.0),
            load_s=m["load_ms"] / 1e3,
            output_bytes=m["out_bytes"],
        )
        for s, m in d["stages"].items()
    }
    net = Network(local_latency_s=d["local_hop_latency_ms"] / 1e3)
    return Calibration(
        stages, d["cold_start_ms"] / 1e3, d["dispatch_ms"] / 1e3, net, d.get("platform_cpu_ms", 0.0) / 1e3
    )


def resimulate(path: Path) -> None:
    """Run the simulator models again on a saved run's rows (the same arrivals, calibration and measured node),
    without the runtime: to compare CPU models on the runtime figures already taken."""
    doc = json.loads(path.read_text())
    seconds, seed = doc["settings"]["seconds"], doc["settings"].get("seed", 7)
    for r in doc["rows"]:
        app = APPS[r["app"]]()
        cal = calibration_of(doc["apps"][r["app"]]["calibration"])
        times = loads(r["app"], seconds, seed)[r["load"]]
        end_s = round(seconds + DRAIN_S, 1)
        r.update(compare(app, r["plan"], times, end_s, cal, (r["cpu_speed"], r["background_cores"]), r["runtime"]))
    doc["resimulated"] = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: models {list(SIM_MODELS)}"
    out = path.with_name(path.stem + "_resim.json")
    out.write_text(json.dumps(doc, indent=1))
    out.with_suffix(".md").write_text(markdown(doc))
    console.print(f"wrote {out} and its .md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=33.0, help="length of each load")
    ap.add_argument("--only", choices=sorted(APPS), action="append", help="apps to run (default: all)")
    ap.add_argument("--repeats", type=int, default=150, help="profile repeats per stage")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--resim", type=Path, help="only re-run the simulator models on this saved run's rows")
    args = ap.parse_args()
    if args.resim:
        resimulate(args.resim)
        return
    doc: dict[str, Any] = {
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "seconds": args.seconds,
            "seed": args.seed,
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
                    s: {
                        "mean_ms": m.mean_s * 1e3,
                        "cv": m.cv,
                        "cpu_fraction": m.cpu_fraction,
                        "load_ms": m.load_s * 1e3,
                        "out_bytes": m.output_bytes,
                    }
                    for s, m in cal.stages.items()
                },
                "cold_start_ms": cal.cold_start_s * 1e3,
                "dispatch_ms": cal.dispatch_s * 1e3,
                "local_hop_latency_ms": cal.network.local_latency_s * 1e3,
                "platform_cpu_ms": cal.platform_cpu_s * 1e3,
                "cpu_reference_ms": cal.cpu_reference_ms,
            },
        }
        console.print(f"[bold]{name}[/]: calibration {doc['apps'][name]['calibration']}")
        slo_s = app.slo.latency_s
        for load, times in loads(name, args.seconds, args.seed).items():
            end_s = round(args.seconds + DRAIN_S, 1)
            for plan in ("fine", "coarse"):
                t0 = time.monotonic()
                with Interference() as inter, SpeedMonitor() as mon:
                    rt = figures(run_runtime(app, plan, times, end_s), slo_s)
                speed = cal.cpu_speed(mon.median_ms)
                # other work on the node: what Interference counts (everything outside this process, so the
                # instances too) less the instances' own stage CPU time (spin reports it; sleepy's is about 0)
                background = max(0.0, inter.other_cores - rt["stage_cpu_s"] / (time.monotonic() - t0))
                row = {
                    "app": name,
                    "plan": plan,
                    "load": load,
                    "requests": len(times),
                    "other_cores": inter.other_cores,
                    "cpu_reference_ms": mon.median_ms,
                    "cpu_speed": speed,
                    "background_cores": background,
                    "runtime": rt,
                    **compare(app, plan, times, end_s, cal, (speed, background), rt),
                }
                doc["rows"].append(row)
                sim = row["sim"]
                err = row["rel_error"]
                console.print(
                    f"{name} {plan:6} {load:18} n={len(times):5} other={inter.other_cores:.2f} "
                    f"bg={background:.2f} speed={speed:.3f}  "
                    + "  ".join(f"{k}={rt[k]:.4g}/{sim[k]:.4g} ({err[k]:+.0%})" for k in METRICS)
                    + "  breakdown rt/sim: "
                    + " ".join(
                        f"{b}={rt.get(b + '_ms', math.nan):.1f}/{sim.get(b + '_ms', math.nan):.1f}"
                        for b in ("queue", "cold", "exec", "exec_cpu", "hop")
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
    for m in SIM_MODELS:
        p50 = " ".join(f"{r['models'][m]['rel_error']['p50_ms']:+.0%}" for r in doc["rows"])
        p99 = " ".join(f"{r['models'][m]['rel_error']['p99_ms']:+.0%}" for r in doc["rows"])
        console.print(f"model {m:13}: p50 errors {p50}; p99 errors {p99}")
    within = {k: sum(abs(r["rel_error"][k]) <= 0.10 for r in doc["rows"]) for k in METRICS}
    in_range = {k: sum(r["runtime_in_seed_range"][k] for r in doc["rows"]) for k in METRICS}
    console.print(f"within 10 %: {within} of {len(doc['rows'])} rows; wall {doc['wall_s']} s")
    console.print(f"runtime inside the simulator's range over {len(SIM_SEEDS)} seeds: {in_range}")


if __name__ == "__main__":
    main()
