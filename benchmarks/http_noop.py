"""Throughput and latency of a no-op over HTTP: Shoal vs Ray Serve vs a bare Starlette endpoint.

wrk POSTs ``[1]`` (application/json) at concurrency 1 (``-t1 -c1``) and 16 (``-t2 -c16``) for ``--duration`` seconds,
``--repeats`` times per level, after a 2 s warm-up at that level. wrk runs on the same machine as the server.

    .venv/bin/python benchmarks/http_noop.py                 # every system
    .venv/bin/python benchmarks/http_noop.py --only shoal bare --repeats 1 --duration 3
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import (
    BENCH,
    PY,
    RESULTS,
    SHOAL,
    Interference,
    console,
    fmt,
    free_port,
    get_json,
    lua_post,
    machine_info,
    save,
    server,
    summary,
    table,
    tree_cpu_s,
    wait_quiet,
    wrk,
)

LEVELS = {"c1": (1, 1), "c16": (2, 16)}  # name: (wrk threads, connections)
RAY_STATUS = RESULTS / "ray_status.json"


def systems(port: int) -> dict[str, dict[str, Any]]:
    shoal = [SHOAL, "serve", "examples/noop.py", "--plan", "coarse", "--port", str(port), "--min-instances", "1"]
    base = f"http://127.0.0.1:{port}"
    ray = [PY, str(BENCH / "peers" / "ray_noop.py"), "--port", "8000", "--status-file", str(RAY_STATUS)]
    return {
        "shoal": {
            "cmd": shoal,
            "url": f"{base}/apps/noop/invoke",
            "ready": f"{base}/healthz",
            "note": "max-instances 8",
        },
        "shoal_max1": {
            "cmd": [*shoal, "--max-instances", "1"],
            "url": f"{base}/apps/noop/invoke",
            "ready": f"{base}/healthz",
            "note": "max-instances 1",
        },
        "ray_fixed": {
            "cmd": [*ray, "--mode", "fixed"],
            "url": "http://127.0.0.1:8000/",
            "ready": "http://127.0.0.1:8000/",
            "post_ready": True,
            "note": "num_replicas=1, max_ongoing_requests=5 (default)",
        },
        "ray_auto": {
            "cmd": [*ray, "--mode", "auto"],
            "url": "http://127.0.0.1:8000/",
            "ready": "http://127.0.0.1:8000/",
            "post_ready": True,
            "note": "num_replicas='auto' (Ray defaults: min 1, max 100, target_ongoing_requests 2; 1 CPU/replica)",
        },
        "bare": {
            "cmd": [PY, str(BENCH / "peers" / "bare_starlette.py"), "--port", str(port)],
            "url": f"{base}/",
            "ready": f"{base}/healthz",
            "note": "Starlette + uvicorn (httptools, uvloop, no access log, 1 worker)",
        },
    }


def instances(name: str, base: str) -> Any:
    """How many instances / replicas serve the load right now."""
    if name.startswith("shoal"):
        fns = get_json(f"{base}/status")["apps"][0]["functions"][0]
        states = [i["state"] for i in fns["instances"]]
        return {"instances": len(states), "ready": states.count("ready"), "desired": fns["desired"]}
    if name.startswith("ray"):
        time.sleep(1.2)  # the driver rewrites the file every second
        try:
            replicas = json.loads(RAY_STATUS.read_text()).get("replicas", {})
        except (OSError, ValueError):
            return None
        return {"instances": sum(replicas.values()), "ready": replicas.get("RUNNING", 0), "states": replicas}
    return None


def scale_text(s: Any) -> str:
    return "-" if not s else f"{s['ready']} ready / {s['instances']}"


def run_system(name: str, spec: dict[str, Any], script: Any, args: argparse.Namespace) -> dict[str, Any]:
    console.rule(f"{name}: {spec['note']}")
    RAY_STATUS.unlink(missing_ok=True)
    post = spec.get("post_ready", False)
    out: dict[str, Any] = {"command": " ".join(spec["cmd"]), "note": spec["note"], "levels": {}}
    out["background_busy"] = wait_quiet()
    t0 = time.monotonic()
    with server(
        spec["cmd"], spec["ready"], 180, "POST" if post else "GET", b"[1]" if post else None, log_name=name
    ) as proc:
        out["startup_s"] = round(time.monotonic() - t0, 2)
        base = spec["url"].split("/apps/")[0]
        for level, (threads, conns) in LEVELS.items():
            warm = wrk(spec["url"], script, threads, conns, args.warmup)
            runs = []
            for rep in range(args.repeats):
                cpu0 = tree_cpu_s(proc.pid)
                with Interference() as other:
                    r = wrk(spec["url"], script, threads, conns, args.duration)
                r["other_cores"] = other.other_cores
                r["server_cpu_ms_per_req"] = round((tree_cpu_s(proc.pid) - cpu0) * 1e3 / max(1, r["requests"]), 3)
                r["scale"] = instances(name, base)
                runs.append(r)
                lat = r["latency_ms"]
                console.print(
                    f"  {level} rep {rep + 1}: {r['rps']:.0f} req/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms,"
                    f" errors {r['errors']}, non-2xx {r['non_2xx']}, instances {scale_text(r['scale'])},"
                    f" other work {r['other_cores']:.2f} cores"
                )
            out["levels"][level] = {
                "warmup_rps": warm["rps"],
                "runs": runs,
                "rps": summary([r["rps"] for r in runs]),
                "p50_ms": summary([r["latency_ms"]["p50"] for r in runs]),
                "p99_ms": summary([r["latency_ms"]["p99"] for r in runs]),
                "cpu_ms_per_req": summary([r["server_cpu_ms_per_req"] for r in runs]),
            }
    return out


def ratios(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level in LEVELS:
        rps = {n: r["levels"][level]["rps"]["median"] for n, r in res.items() if level in r.get("levels", {})}
        d: dict[str, float] = {}
        for s in ("shoal", "shoal_max1"):
            for peer in ("ray_fixed", "ray_auto"):
                if s in rps and peer in rps:
                    d[f"{s}/{peer}"] = round(rps[s] / rps[peer], 2)  # target >= 10
            if s in rps and "bare" in rps:
                d[f"bare/{s}"] = round(rps["bare"] / rps[s], 2)  # target <= 3
        out[level] = d
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None, help="systems to run (default: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    args = ap.parse_args()
    specs = systems(free_port())
    names = args.only or list(specs)
    script = lua_post("[1]", "application/json")
    res: dict[str, Any] = {}
    for n in names:
        try:
            res[n] = run_system(n, specs[n], script, args)
        except Exception as e:  # a peer that fails to start must not lose the others' figures
            console.print(f"[red]{n} failed: {e}[/]")
            res[n] = {"error": str(e)}
    script.unlink()
    doc = {
        "benchmark": "http_noop",
        "machine": machine_info(),
        "settings": vars(args) | {"levels": LEVELS, "body": "[1]"},
        "systems": res,
        "ratios": ratios(res),
    }
    save("http_noop", doc)
    rows = []
    for n, r in res.items():
        for level, v in r.get("levels", {}).items():
            scale = scale_text(v["runs"][-1]["scale"])
            rows.append(
                [n, level, fmt(v["rps"], 0), fmt(v["p50_ms"]), fmt(v["p99_ms"]), fmt(v["cpu_ms_per_req"]), scale]
            )
    cols = ["system", "conc", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "instances at end"]
    table("No-op over HTTP: median (min-max) of the repeats", cols, rows)
    for level, d in doc["ratios"].items():
        console.print(f"{level}: " + ", ".join(f"{k} = {v}" for k, v in d.items()))


if __name__ == "__main__":
    main()
