"""Where does a CPU-bound stage's time go when it is served rather than profiled? (issue 5, simulator validation)

One instance of a one-stage app that spins a fixed number of Python loop iterations (about 9 ms), called one
request at a time (never two at once) with idle gaps between calls: none (back to back, as ``shoal profile``
measures) or exponential gaps of a given mean (as a Poisson load leaves them). Per call the stage reports its own
wall time and its thread's CPU time (so a slower stage can be told apart from a descheduled one); the parent's
view gives the round trip less the instance's busy time (dispatch). The parent's own CPU time per request comes
from ``time.process_time`` over the run.

    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/sim_cpu_probe.py           # paced vs back to back
    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/sim_cpu_probe.py --load    # two stages under Poisson load
    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/sim_cpu_probe.py --cores   # one core vs two
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import console, machine_info, save

import shoal
from shoal.app import FunctionConfig, Plan
from shoal.runtime.host import HostConfig
from shoal.runtime.orchestrator import invoke

ITERS = 9 * 20_000


def make_app() -> shoal.App:
    app = shoal.App("probe")

    @app.stage(vcpu=0.5, memory_mb=256)
    def spin(x: Any) -> Any:
        w0, c0 = time.perf_counter(), time.thread_time()
        acc = 0
        for i in range(ITERS):
            acc += i
        return [(time.perf_counter() - w0) * 1e3, (time.thread_time() - c0) * 1e3]

    return app


async def _series(host: Any, gap_ms: float, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    wall, cpu, disp = [], [], []
    p0 = time.process_time()
    t0 = time.perf_counter()
    idle = 0.0
    for _ in range(n):
        if gap_ms > 0:
            g = rng.expovariate(1e3 / gap_ms)
            idle += g
            await asyncio.sleep(g)
        r = await invoke(host, "probe", 1.0)
        w, c = r.output
        f = next(iter(r.timing["functions"].values()))
        wall.append(w)
        cpu.append(c)
        disp.append(f["rtt_ms"] - f["busy_ms"])
    elapsed = time.perf_counter() - t0
    parent_cpu_ms = (time.process_time() - p0) * 1e3 / n
    med = statistics.median
    return {
        "gap_ms": gap_ms,
        "n": n,
        "stage_wall_ms": med(wall),
        "stage_cpu_ms": med(cpu),
        "stage_wall_mean_ms": statistics.fmean(wall),
        "dispatch_ms": med(disp),
        "parent_cpu_ms_per_request": parent_cpu_ms,
        "busy_cores": (elapsed - idle) / elapsed,
    }


def make_pair() -> shoal.App:
    """Two spinning stages (2 and 9 ms), each reporting its wall and thread-CPU time down the chain."""
    app = shoal.App("pair")

    def timed(n: int, x: Any) -> Any:
        w0, c0 = time.perf_counter(), time.thread_time()
        acc = 0
        for i in range(n):
            acc += i
        return [*x, [(time.perf_counter() - w0) * 1e3, (time.thread_time() - c0) * 1e3]]

    @app.stage(vcpu=0.5, memory_mb=256)
    def parse(x: Any) -> Any:
        return timed(2 * 20_000, [])

    @app.stage(after=parse, vcpu=0.5, memory_mb=256)
    def score(x: Any) -> Any:
        return timed(9 * 20_000, x)

    return app


def open_loop(rate: float, seconds: float, plan: str) -> dict[str, Any]:
    """The pair app under a Poisson load (open loop, as benchmarks/sim_validation.py drives it): per stage, the
    median wall and CPU time of a call, and how many requests were in flight when each started."""
    from shoal.workload import generators

    app = make_pair()
    fc = FunctionConfig(min_instances=1, max_instances=1, keep_alive_s=3600.0)
    p = Plan.fine(app, default=fc) if plan == "fine" else Plan.coarse(app, default=fc)
    times = generators.poisson(rate, seconds, seed=7).tolist()
    outs: list[Any] = []
    p0 = time.process_time()
    with shoal.local(app, p, HostConfig(preload=("numpy",))) as svc:

        async def drive() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(1.0)
            base = loop.time()
            tasks = []

            async def one() -> None:
                r = await invoke(svc.host, "pair", 1.0)
                outs.append(r.output)

            for a in times:
                await asyncio.sleep(max(0.0, base + a - loop.time()))
                tasks.append(loop.create_task(one()))
            await asyncio.gather(*tasks)

        svc._run(drive(), timeout=seconds + 60)
    parent = (time.process_time() - p0) * 1e3 / len(times)
    med = statistics.median
    return {
        "rate": rate,
        "plan": plan,
        "n": len(times),
        "parse_wall_ms": med(o[0][0] for o in outs),
        "parse_cpu_ms": med(o[0][1] for o in outs),
        "score_wall_ms": med(o[1][0] for o in outs),
        "score_cpu_ms": med(o[1][1] for o in outs),
        "score_wall_mean_ms": statistics.fmean(o[1][0] for o in outs),
        "score_cpu_mean_ms": statistics.fmean(o[1][1] for o in outs),
        "parent_cpu_ms_per_request": parent,
    }


def _loop(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += i
    return acc


def _busy(cpu: int, stop: Any) -> None:
    os.sched_setaffinity(0, [cpu])
    while not stop.is_set():
        _loop(100_000)


def _timed(cpu: int, reps: int, gap_s: float = 0.0) -> float:
    os.sched_setaffinity(0, [cpu])
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        _loop(ITERS)
        ts.append((time.perf_counter() - t) * 1e3)
        if gap_s:
            time.sleep(gap_s)
    return statistics.median(ts)


def cores() -> dict[str, list[float]]:
    """The same loop pinned to core 0: alone, while another process spins on core 1 (do the two cores slow each
    other down, as hyperthreads of one core would?), while one spins on core 0 itself, and alone with 60-ms gaps."""
    import multiprocessing as mp

    out: dict[str, list[float]] = {}
    for _ in range(3):
        out.setdefault("alone", []).append(_timed(0, 200))
        for where, label, reps in ((1, "other core busy", 200), (0, "same core busy", 60)):
            stop = mp.Event()
            p = mp.Process(target=_busy, args=(where, stop))
            p.start()
            time.sleep(0.2)
            out.setdefault(label, []).append(_timed(0, reps))
            stop.set()
            p.join()
        out.setdefault("alone, 60-ms gaps", []).append(_timed(0, 60, 0.06))
    for k, v in out.items():
        console.print(f"{k:20} " + " ".join(f"{x:.2f}" for x in v) + " ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30, help="calls per block")
    ap.add_argument("--rounds", type=int, default=8, help="blocks per gap")
    ap.add_argument("--gaps", default="0,2,10,66,200", help="mean idle gaps between calls, ms (0: back to back)")
    ap.add_argument("--load", action="store_true", help="instead: the two-stage app under Poisson loads")
    ap.add_argument("--cores", action="store_true", help="instead: the loop pinned, beside work on either core")
    args = ap.parse_args()
    if args.cores:
        save("sim_cpu_probe_cores", {"machine": machine_info(), "median_ms": cores()})
        return
    if args.load:
        res = []
        for rate in (15.0, 60.0):
            for plan in ("fine", "coarse"):
                r = open_loop(rate, 20.0, plan)
                res.append(r)
                console.print({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
        save("sim_cpu_probe_load", {"machine": machine_info(), "rows": res})
        return
    app = make_app()
    fc = FunctionConfig(min_instances=1, max_instances=1, keep_alive_s=3600.0)
    rows: list[dict[str, Any]] = []
    steal0 = _steal()
    with shoal.local(app, Plan.coarse(app, default=fc), HostConfig(preload=("numpy",))) as svc:

        async def all_gaps() -> None:
            await asyncio.sleep(1.0)
            for _ in range(10):
                await invoke(svc.host, "probe", 1.0)
            # short blocks, the gaps interleaved, so that the machine's drift (other work, steal) hits all alike
            for rnd in range(args.rounds):
                for g in (float(x) for x in args.gaps.split(",")):
                    row = await _series(svc.host, g, args.n, seed=rnd * 1000 + int(g))
                    row["round"] = rnd
                    rows.append(row)

        svc._run(all_gaps(), timeout=600)
    steal = _steal() - steal0
    summary = []
    for g in dict.fromkeys(r["gap_ms"] for r in rows):
        rs = [r for r in rows if r["gap_ms"] == g]
        agg = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k not in ("gap_ms", "round", "n")}
        lo = min(r["stage_wall_ms"] for r in rs)
        hi = max(r["stage_wall_ms"] for r in rs)
        summary.append({"gap_ms": g, "blocks": len(rs), **agg, "stage_wall_ms_block_range": [lo, hi]})
        console.print(
            f"gap {g:5.0f} ms ({len(rs)} blocks of {args.n}): stage wall {agg['stage_wall_ms']:.2f} ms"
            f" (blocks {lo:.2f}-{hi:.2f}), cpu {agg['stage_cpu_ms']:.2f} ms; dispatch {agg['dispatch_ms']:.3f} ms;"
            f" parent cpu {agg['parent_cpu_ms_per_request']:.2f} ms/request"
        )
    console.print(f"steal over the run: {steal:.2f} s")
    save("sim_cpu_probe", {"machine": machine_info(), "summary": summary, "rows": rows, "steal_s": steal})


def _steal() -> float:
    """Seconds of steal time over all CPUs so far (/proc/stat: time the hypervisor ran someone else)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
