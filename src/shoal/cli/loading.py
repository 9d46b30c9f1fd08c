"""``shoal load``: drive open-loop load from a generator or a real trace against a running server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli._app import cli
from shoal.cli._app import fail as _fail


def _body(data: str) -> tuple[bytes, str]:
    if data.startswith("@"):
        path = Path(data[1:])
        if not path.is_file():
            _fail(f"--data {data}: no such file; give @FILE.npy, @FILE.json or a JSON value")
        return path.read_bytes(), "application/x-npy" if path.suffix == ".npy" else "application/json"
    try:
        json.loads(data)
    except ValueError as e:
        _fail(f"--data is not JSON ({e}); give a JSON value, @FILE.npy or @FILE.json")
    return data.encode(), "application/json"


@cli.command()
def load(
    app: Annotated[str, typer.Argument(help="Application name, as deployed on the server.")],
    trace: Annotated[
        str,
        typer.Option(
            help="poisson:RATE:SECONDS | mmpp:LOW:HIGH:SECONDS | diurnal:MEAN:SECONDS | ramp:START:END:SECONDS | "
            "a trace CSV (Azure Functions 2019 or 2021, Azure LLM 2023)."
        ),
    ] = "poisson:20:30",
    data: Annotated[str, typer.Option(help="Request body: a JSON value, or @FILE.npy / @FILE.json.")] = "null",
    function: Annotated[
        int, typer.Option(help="Which function of a multi-function trace drives the load (0: the busiest).")
    ] = 0,
    compress: Annotated[float, typer.Option(help="Divide trace time by this (60: a minute per second).")] = 1.0,
    rate_scale: Annotated[float, typer.Option(help="Multiply the arrival rate (thinning or superposition).")] = 1.0,
    minutes: Annotated[float | None, typer.Option(help="Play only the first minutes (after compression).")] = None,
    slo: Annotated[str | None, typer.Option(help="SLO to score against, e.g. p99:200ms (default: the app's).")] = None,
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    seed: Annotated[int, typer.Option(help="Seed of the generators and of rate scaling.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write latency and rate over time to this PNG.")] = None,
    output: Annotated[str, typer.Option(help="text | json")] = "text",
) -> None:
    """Send open-loop load from a generator or a real trace to a running `shoal serve`.

    Requests leave at the trace's times whether or not earlier ones have answered (open loop), so queueing shows up
    as latency the way users would see it. Prints p50/p99 and the SLO hit rate; --plot draws latency over time.

    Examples:

      shoal load image --trace mmpp:5:50:60 --data @image.npy

      shoal load image --trace ../shared/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv --compress 6 --minutes 2
    """
    import httpx
    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from shoal.app import SLO, SpecError
    from shoal.workload.driver import summarize
    from shoal.workload.http import drive_http
    from shoal.workload.source import prepare
    from shoal.workload.traces import TraceError

    if output not in ("text", "json"):
        _fail(f"--output must be text or json, got {output!r}")
    body, ctype = _body(data)
    try:
        t = prepare(trace, seed=seed, compress=compress, rate_scale=rate_scale, minutes=minutes)
    except (TraceError, ValueError) as e:
        _fail(str(e))
    if len(t.functions) > 1:
        counts = np.bincount(t.func, minlength=len(t.functions))
        order = np.argsort(-counts, kind="stable")
        if not 0 <= function < len(order):
            _fail(f"--function must be in [0, {len(order)}): the trace has {len(order)} functions")
        times = t.times[t.func == order[function]]
    else:
        times = t.times
    if times.size == 0:
        _fail(
            "the load has no arrival in the chosen span; raise --minutes or --rate-scale, or pick a busier --function"
        )
    try:
        apps = httpx.get(f"{url}/apps", timeout=10).raise_for_status().json()
    except httpx.HTTPError as e:
        _fail(f"cannot reach {url}/apps: {e}. Is `shoal serve` running there?")
    if app not in apps:
        _fail(f"the server has no app {app!r}; it serves: {', '.join(apps) or 'none'}")
    try:
        target = SLO.parse(slo or apps[app]["slo"])
    except (SpecError, ValueError) as e:
        _fail(f"--slo: {e}")

    console = Console(stderr=True)
    with Progress(
        TextColumn(f"{app} under {t.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=output == "json",
    ) as progress:
        task = progress.add_task("load", total=int(times.size))
        outcomes, _ = asyncio.run(
            drive_http(
                url,
                f"/apps/{app}/invoke",
                [body],
                iter(times.tolist()),
                content_type=ctype,
                on_done=lambda o: progress.advance(task),
            )
        )
    doc: dict[str, Any] = summarize(outcomes, target.latency_s)
    doc |= {"app": app, "load": t.name, "slo": str(target), "seconds": float(times[-1])}
    codes, counts = np.unique([o.status for o in outcomes], return_counts=True)
    doc["statuses"] = {str(k): int(v) for k, v in zip(codes, counts, strict=True)}
    if plot is not None:
        _plot(outcomes, target.latency_s, plot)
        doc["plot"] = str(plot)
    if output == "json":
        typer.echo(json.dumps(doc))
        return
    from rich.table import Table

    table = Table(title=f"{app}: {doc['requests']} requests of {t.name}")
    for col in ("ok", "p50 ms", "p99 ms", f"SLO hit ({target})", "statuses"):
        table.add_column(col)
    table.add_row(
        str(doc["ok"]),
        f"{doc['p50_ms']:.1f}",
        f"{doc['p99_ms']:.1f}",
        f"{doc['slo_hit']:.3f}",
        ", ".join(f"{k}: {v}" for k, v in doc["statuses"].items()),
    )
    Console().print(table)
    if plot is not None:
        typer.echo(f"wrote {plot}")


def _plot(outcomes: Any, slo_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sent = np.array([o.t_sent for o in outcomes])
    lat = np.array([o.latency_s * 1e3 for o in outcomes])
    ok = np.array([o.status == 200 for o in outcomes])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.scatter(sent[ok], lat[ok], s=4, label="ok")
    if (~ok).any():
        ax1.scatter(sent[~ok], lat[~ok], s=8, c="red", label="failed")
    ax1.axhline(slo_s * 1e3, color="grey", linestyle="--", label="SLO")
    ax1.set_ylabel("latency (ms)")
    ax1.set_yscale("log")
    ax1.legend(loc="upper right")
    edges = np.arange(0.0, float(sent.max()) + 2.0, 1.0)
    ax2.hist(sent, bins=edges)
    ax2.set_ylabel("requests / s")
    ax2.set_xlabel("time (s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
