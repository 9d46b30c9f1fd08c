"""Dynamic batching off and on: the MobileNet-V2 image pipeline at several offered loads, over HTTP.

The app is ``examples/image_classification.py:mobilenet_v2`` (preprocess -> backbone, batch=True -> head) under the
coarse plan, served by ``shoal serve``; an open-loop Poisson client sends ``.npy`` photos of varied sizes. Batching
"on" is ``--max-batch-size 8 --max-batch-wait-ms 10``; "off" is the default (every request alone). Reported per load:
achieved throughput, client-side p50/p99, SLO hit rate, resource cost and user bill from the server's meter, and how
many instances the autoscaler ended with.

    .venv/bin/python benchmarks/batching.py [--rates 10 30 60] [--seconds 15] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Interference, console, machine_info, save, summary, table, wait_quiet

from shoal import SLO
from shoal.testing import ServerProcess
from shoal.workload import poisson_arrivals, summarize
from shoal.workload.http import drive_http
from shoal.zoo.inputs import sample_inputs

APP = f"{ROOT / 'examples' / 'image_classification.py'}:mobilenet_v2"
MODES = {"off": [], "on": ["--max-batch-size", "8", "--max-batch-wait-ms", "10"]}


def bodies(n: int = 48) -> list[bytes]:
    out = []
    for img in sample_inputs("mobilenet-v2", n, seed=3):
        buf = io.BytesIO()
        np.save(buf, img)
        out.append(buf.getvalue())
    return out


def one_run(mode: str, rate: float, seconds: float, payloads: list[bytes]) -> dict[str, Any]:
    with ServerProcess(APP, "coarse", "--keep-alive", "30", *MODES[mode]) as srv:
        # Warm one instance first: the comparison is about batching, not about the first cold start.
        srv.client.post("/apps/mobilenet-v2/invoke", content=payloads[0], headers={"content-type": "application/x-npy"})
        with Interference() as noise:
            outcomes, _ = asyncio.run(
                drive_http(srv.url, "/apps/mobilenet-v2/invoke", payloads, poisson_arrivals(rate, seconds, seed=7))
            )
        status = srv.status()
    app = status["apps"][0]
    meter = status["meter"]
    stats = summarize(outcomes, SLO.parse(app["slo"]).latency_s)
    return {
        **stats,
        "throughput_rps": stats["ok"] / seconds,
        "resource_cost_usd": meter["resource_cost"]["total"]["usd"],
        "user_bill_usd": meter["user_bill"]["total"]["usd"],
        "instance_seconds": meter["resource_cost"]["total"]["seconds"],
        "instances_end": sum(len(f["instances"]) for f in app["functions"]),
        "other_cores": noise.other_cores,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0, 60.0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    payloads = bodies()
    results: dict[str, Any] = {}
    busy = {}
    for rate in args.rates:
        for mode in MODES:
            key = f"{mode}@{rate:g}"
            busy[key] = wait_quiet()
            runs = []
            for r in range(args.repeats):
                console.print(f"[dim]batching {mode}, {rate:g} req/s, run {r + 1}/{args.repeats}[/]")
                runs.append(one_run(mode, rate, args.seconds, payloads))
            results[key] = {
                "runs": runs,
                **{m: summary([x[m] for x in runs]) for m in ("throughput_rps", "p50_ms", "p99_ms", "slo_hit")},
                "resource_cost_usd": summary([x["resource_cost_usd"] for x in runs]),
            }
    rows = []
    for key, res in results.items():
        mode, rate = key.split("@")
        rows.append(
            [
                rate,
                mode,
                f"{res['throughput_rps']['median']:.1f}",
                f"{res['p50_ms']['median']:.1f} ({res['p50_ms']['min']:.1f}-{res['p50_ms']['max']:.1f})",
                f"{res['p99_ms']['median']:.1f} ({res['p99_ms']['min']:.1f}-{res['p99_ms']['max']:.1f})",
                f"{100 * res['slo_hit']['median']:.1f}%",
                f"${res['resource_cost_usd']['median']:.6f}",
            ]
        )
    table(
        "MobileNet-V2 pipeline, coarse plan: dynamic batching off vs on (medians over repeats, min-max)",
        ["offered req/s", "batching", "achieved req/s", "p50 ms", "p99 ms", "SLO hit", "resource cost"],
        rows,
    )
    save(
        "batching",
        {
            "benchmark": "batching",
            "machine": machine_info(),
            "settings": {"app": APP, "plan": "coarse", "modes": MODES, **vars(args), "background_busy": busy},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
