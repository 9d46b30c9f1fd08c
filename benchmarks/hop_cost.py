"""The cost of a function boundary: a three-stage chain on a 1 MiB float64 array, plan fine vs plan coarse.

Fine runs each stage in its own function (two more hops than coarse, where one instance runs all three). One client,
closed loop: in-process through ``shoal.local`` (both plans deployed side by side in one host) and over HTTP with
``.npy`` bodies (two ``shoal serve`` processes, one per plan). The plans alternate block by block.

    per-hop cost = (median latency fine - median latency coarse) / 2        target: <= 0.5 ms

    .venv/bin/python benchmarks/hop_cost.py
    .venv/bin/python benchmarks/hop_cost.py --requests 300 --repeats 1      # a quick look
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from typing import Any

import httpx
import numpy as np
from _common import (
    BENCH,
    SHOAL,
    Interference,
    console,
    fmt,
    free_port,
    machine_info,
    percentile,
    save,
    server,
    summary,
    table,
    wait_quiet,
)

sys.path.insert(0, str(BENCH / "apps"))
from chain import make_chain

import shoal

PLANS = ("coarse", "fine")
#: With --malloc-tuned: glibc then keeps freed memory instead of returning it to the OS after each request.
MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
N = 1 << 17  # float64 elements: 1 MiB


def block(call: Any, n: int) -> dict[str, Any]:
    """``n`` closed-loop requests; ``call`` returns the request's timing breakdown."""
    lat, hop, tot, exe = [], [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        timing = call()
        lat.append((time.perf_counter() - t0) * 1e3)
        hop.append(timing["hop_ms"])
        tot.append(timing["total_ms"])
        exe.append(sum(timing["exec_ms"].values()))
    return {
        "n": n,
        "p50_ms": statistics.median(lat),
        "p99_ms": percentile(lat, 99),
        "mean_ms": statistics.fmean(lat),
        "timing_hop_ms": statistics.median(hop),
        "timing_total_ms": statistics.median(tot),
        "timing_exec_ms": statistics.median(exe),
    }


def measure(calls: dict[str, Any], args: argparse.Namespace, label: str) -> dict[str, Any]:
    for plan in PLANS:
        block(calls[plan], args.warmup)
    reps: dict[str, list[dict[str, Any]]] = {p: [] for p in PLANS}
    for rep in range(args.repeats):
        for plan in PLANS if rep % 2 == 0 else PLANS[::-1]:
            with Interference() as other:
                b = block(calls[plan], args.requests)
            b["other_cores"] = other.other_cores
            reps[plan].append(b)
            console.print(
                f"  {label} {plan} rep {rep + 1}: p50 {b['p50_ms']:.3f} ms, p99 {b['p99_ms']:.3f} ms, "
                f"timing hop_ms {b['timing_hop_ms']:.3f}; other work {b['other_cores']:.2f} cores"
            )
    per_hop = [(f["p50_ms"] - c["p50_ms"]) / 2 for c, f in zip(reps["coarse"], reps["fine"], strict=True)]
    per_hop_timing = [
        (f["timing_hop_ms"] - c["timing_hop_ms"]) / 2 for c, f in zip(reps["coarse"], reps["fine"], strict=True)
    ]
    out: dict[str, Any] = {
        "repeats": reps,
        "per_hop_ms": summary(per_hop),
        "per_hop_timing_ms": summary(per_hop_timing),
    }
    for plan in PLANS:
        out[plan] = {k: summary([b[k] for b in reps[plan]]) for k in reps[plan][0] if k not in ("n", "other_cores")}
    return out


def run_local(x: np.ndarray, expect: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    cfg = shoal.FunctionConfig(min_instances=1)
    apps = {p: make_chain(f"chain_{p}") for p in PLANS}
    deps = [(a, shoal.Plan.parse(a, p, default=cfg)) for p, a in apps.items()]
    with shoal.local(deps) as svc:
        for p in PLANS:
            assert np.array_equal(svc.invoke(x, app=f"chain_{p}"), expect), f"wrong output under plan {p}"

        def caller(p: str) -> Any:
            return lambda: svc.call(x, app=f"chain_{p}").timing

        return measure({p: caller(p) for p in PLANS}, args, "local")


def run_http(x: np.ndarray, expect: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    body = buf.getvalue()
    headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    ports = {p: free_port() for p in PLANS}
    cmds = {
        p: [SHOAL, "serve", "benchmarks/apps/chain.py", "--plan", p, "--port", str(ports[p]), "--min-instances", "1"]
        for p in PLANS
    }
    ready = {p: f"http://127.0.0.1:{ports[p]}/healthz" for p in PLANS}
    with (
        server(cmds["coarse"], ready["coarse"], log_name="hop_coarse"),
        server(cmds["fine"], ready["fine"], log_name="hop_fine"),
        httpx.Client(timeout=30) as client,
    ):
        urls = {p: f"http://127.0.0.1:{ports[p]}/apps/chain/invoke" for p in PLANS}
        for p in PLANS:
            r = client.post(urls[p], content=body, headers=headers).raise_for_status()
            assert np.array_equal(np.load(io.BytesIO(r.content), allow_pickle=False), expect), f"wrong output ({p})"

        def caller(p: str) -> Any:
            def call() -> dict[str, Any]:
                r = client.post(urls[p], content=body, headers=headers)
                r.raise_for_status()
                return json.loads(r.headers["x-shoal-timing"])

            return call

        out = measure({p: caller(p) for p in PLANS}, args, "http")
        out["commands"] = {p: " ".join(c) for p, c in cmds.items()}
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="timed requests per plan per repeat")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=["local", "http"])
    ap.add_argument("--malloc-tuned", action="store_true", help="rerun with glibc's trim/mmap thresholds at 128 MiB")
    args = ap.parse_args()
    if args.malloc_tuned and MALLOC_ENV[0] not in os.environ:  # glibc reads them at start-up: run again with them
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | dict.fromkeys(MALLOC_ENV, str(128 << 20)))
    x = np.random.default_rng(0).standard_normal(N)
    expect = (x + 1) * 2 - 3
    res: dict[str, Any] = {}
    busy = {}
    for mode, fn in (("local", run_local), ("http", run_http)):
        if mode in args.only:
            console.rule(f"hop cost: {mode}")
            busy[mode] = wait_quiet()
            res[mode] = fn(x, expect, args)
    doc = {
        "benchmark": "hop_cost",
        "machine": machine_info(),
        "settings": vars(args)
        | {
            "array": f"float64[{N}] ({x.nbytes} bytes)",
            "background_busy": busy,
            "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
        },
        "results": res,
    }
    save("hop_cost_malloc_tuned" if args.malloc_tuned else "hop_cost", doc)
    rows = []
    for mode, r in res.items():
        for p in PLANS:
            s = r[p]
            rows.append([mode, p, fmt(s["p50_ms"], 3), fmt(s["p99_ms"], 3), fmt(s["timing_hop_ms"], 3), ""])
        rows.append([mode, "per hop", "", "", fmt(r["per_hop_timing_ms"], 3), fmt(r["per_hop_ms"], 3)])
    cols = ["path", "plan", "p50 ms", "p99 ms", "timing hop_ms (p50)", "per-hop ms = (fine-coarse)/2"]
    table("Hop cost, 1 MiB float64, 1 closed-loop client: median (min-max) over repeats", cols, rows)


if __name__ == "__main__":
    main()
