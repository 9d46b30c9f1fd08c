"""``shoal demo`` (and ``make demo``): serve the example image pipeline under two granularities and compare them.

It starts a real server (``shoal serve``) per plan, drives open-loop Poisson load of images of varied sizes at it
over HTTP, and prints latency, SLO hit rate, cold starts, the user bill and the resource cost side by side.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shoal.app import SLO
from shoal.report import fmt_usd, make_console, print_status
from shoal.testing import ServerProcess
from shoal.workload import Outcome, poisson_arrivals, summarize
from shoal.workload.http import drive_http

__all__ = ["run_demo"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_pipeline.py"
PLANS = ("fine", "coarse")


def _images(n: int, seed: int = 0) -> list[bytes]:
    """``.npy`` bodies of RGB images from 96x128 to 480x640, as phone uploads and thumbnails would mix."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = int(rng.integers(96, 481))
        w = int(h * rng.uniform(1.0, 1.5))
        buf = io.BytesIO()
        np.save(buf, rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        out.append(buf.getvalue())
    return out


def run_demo(seconds: float = 8.0, rate: float = 40.0, console: Console | None = None) -> list[dict[str, Any]]:
    console = console or make_console()
    if not EXAMPLE.is_file():
        raise SystemExit(f"shoal demo runs from a source checkout: {EXAMPLE} is missing")
    console.rule("[bold]Shoal demo: one application, two granularities")
    console.print(
        "The image pipeline (preprocess -> CNN backbone on ONNX Runtime -> top-5 head) is served twice: "
        "[bold]fine[/bold] (one serverless function per stage) and [bold]coarse[/bold] (one function for all). "
        f"Open-loop Poisson load of {rate:g} req/s for {seconds:g} s each, images of varied sizes, over HTTP.\n"
    )
    rows = []
    for plan in PLANS:
        with ServerProcess(str(EXAMPLE), plan, "--keep-alive", "30") as server:
            expected = int(rate * seconds)
            with Progress(
                TextColumn(f"plan {plan:<6}"),
                BarColumn(),
                TextColumn("{task.completed}/~{task.total} requests"),
                TimeRemainingColumn(),
                console=console,
            ) as progress:
                task = progress.add_task(plan, total=expected)
                outcomes, last = asyncio.run(
                    drive_http(
                        server.url,
                        "/apps/image/invoke",
                        _images(32),
                        poisson_arrivals(rate, seconds, seed=1),
                        on_done=lambda o, t=task: progress.advance(t),
                    )
                )
            status = server.status()
        rows.append(_summary(plan, outcomes, status, last))
        print_status(status, console)
    _print_table(rows, console)
    return rows


def _summary(plan: str, outcomes: list[Outcome], status: dict, last: dict) -> dict[str, Any]:
    app = status["apps"][0]
    meter = status["meter"]
    return {
        "plan": plan,
        "functions": len(app["functions"]),
        **summarize(outcomes, SLO.parse(app["slo"]).latency_s),
        "slo": app["slo"],
        "cold_starts": sum(f["cold_starts"] for f in app["functions"]),
        "bill_usd": meter["user_bill"]["total"]["usd"],
        "cost_usd": meter["resource_cost"]["total"]["usd"],
        "timing": last or None,
    }


def _print_table(rows: list[dict[str, Any]], console: Console) -> None:
    t = Table(title="What happened (client-side latency; costs from the server's meter)", title_justify="left")
    for col in (
        "plan",
        "functions",
        "requests",
        "ok",
        "p50 ms",
        "p99 ms",
        "SLO hit",
        "cold starts",
        "user bill",
        "resource cost",
    ):
        t.add_column(col, justify="left" if col == "plan" else "right")
    for r in rows:
        t.add_row(
            r["plan"],
            str(r["functions"]),
            str(r["requests"]),
            str(r["ok"]),
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{100 * r['slo_hit']:.1f}% ({r['slo']})",
            str(r["cold_starts"]),
            fmt_usd(r["bill_usd"]),
            fmt_usd(r["cost_usd"]),
        )
    console.print(t)
    for r in rows:
        if r["timing"]:
            tm = r["timing"]
            stages = ", ".join(f"{k} {v:.2f}" for k, v in tm["exec_ms"].items())
            console.print(
                f"[bold]{r['plan']}[/bold], one request: total {tm['total_ms']:.2f} ms = queue {tm['queue_ms']:.2f}"
                f" + cold start {tm['cold_start_ms']:.2f} + stages ({stages}) + hops {tm['hop_ms']:.2f}"
            )
    console.print(
        "\nResource cost counts every live instance's allocated CPU and memory, idle keep-alive included; the user "
        "bill counts only billed execution.\nTry: shoal serve examples/image_pipeline.py "
        "--plan 'preprocess,backbone+head'"
    )
