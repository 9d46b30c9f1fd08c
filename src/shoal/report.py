"""Rendering for people: status tables, run summaries and profiles (rich)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from shoal.predict import SCHEMA, GpuPoint, Profile

__all__ = ["make_console", "print_status", "render_profile", "fmt_ms", "fmt_usd", "fmt_bytes"]


def make_console() -> Console:
    """A console that stays readable when piped (rich falls back to 80 columns, too narrow for our tables)."""
    c = Console()
    return c if c.is_terminal else Console(width=140)


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def fmt_usd(usd: float) -> str:
    return f"${usd:.6f}"


def fmt_bytes(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def print_status(doc: dict[str, Any], console: Console | None = None) -> None:
    """Print ``GET /status`` as tables: functions and their instances, then costs and notes."""
    console = console or make_console()
    for app in doc["apps"]:
        t = Table(title=f"{app['app']}  plan={app['plan']}  SLO {app['slo']}", title_justify="left")
        for col in ("function", "stages", "vCPU", "desired", "instances", "in flight", "queued", "cold starts"):
            t.add_column(col, justify="right" if col not in ("function", "stages") else "left")
        for f in app["functions"]:
            states: dict[str, int] = {}
            for i in f["instances"]:
                states[i["state"]] = states.get(i["state"], 0) + 1
            inst = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "0"
            t.add_row(
                f["function"]
                + (" (panic)" if f["panic"] else "")
                + (" (at CPU capacity)" if f.get("capacity_limited") else ""),
                "+".join(f["stages"]),
                f"{f['resources']['vcpu']:g}",
                str(f["desired"]),
                inst,
                str(f["in_flight"]),
                str(f["queued"]),
                str(f["cold_starts"]),
            )
            if f.get("last_error"):
                console.print(f"[red]{f['function']}: {f['last_error']}[/red]")
        console.print(t)
        if app.get("draining"):
            console.print(f"draining after a plan switch: {', '.join(app['draining'])}")
        windows = [w for w in app.get("adaptive") or [] if "reason" in w]
        if windows:
            w = windows[-1]
            load = w.get("load", {})
            rate = f"{load['rate']:.1f} req/s" if "rate" in load else "load unknown"
            console.print(f"adaptive: at t={w['t']:.0f} s, {rate}, plan {w['plan']}: {w['reason']}")
    meter = doc.get("meter", {})
    bill = meter.get("user_bill", {}).get("total", {})
    cost = meter.get("resource_cost", {}).get("total", {})
    if bill or cost:
        console.print(
            f"user bill {fmt_usd(bill.get('usd', 0.0))} over {bill.get('count', 0)} invocations; "
            f"resource cost {fmt_usd(cost.get('usd', 0.0))} over {cost.get('seconds', 0.0):.1f} instance-seconds"
        )
    for note in doc.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")


def render_profile(profile: Profile, console: Console | None = None) -> None:
    """Print a profile as tables: measured points, hops, GPU rows, repeatability and notes."""
    console = console or Console()
    t = Table(title=f"profile of {profile.app.name} ({SCHEMA})", title_justify="left")
    columns = (
        "stage / function",
        "plan",
        "vCPU",
        "batch",
        "input",
        "in KB",
        "median ms",
        "p10-p90 ms",
        "CV %",
        "busy ms",
        "out KB",
        "load ms",
        "peak MB",
    )
    for col in columns:
        left = col in ("stage / function", "plan", "input")
        t.add_column(col, justify="left" if left else "right", overflow="fold" if left else "ellipsis")
    for p in profile.points:
        t.add_row(
            p.name,
            p.plan,
            f"{p.vcpu:g}",
            f"{p.batch}{'r' if p.batching == 'rows' else ''}",
            p.input_size,
            f"{p.input_bytes / 1024:.1f}",
            f"{p.latency_ms.median:.2f}",
            f"{p.latency_ms.p10:.2f}-{p.latency_ms.p90:.2f}",
            f"{100 * p.latency_ms.cv:.1f}",
            f"{p.busy_ms.median:.2f}",
            f"{p.output_bytes / 1024:.1f}",
            f"{p.load_ms:.0f}",
            f"{p.peak_rss_mb:.0f}",
        )
    console.print(t)
    if profile.hops:
        h = Table(title="data hop between two functions (fine - coarse)", title_justify="left")
        for col in ("bytes", "per hop ms", "fine median ms", "coarse median ms"):
            h.add_column(col, justify="right")
        for hp in profile.hops:
            h.add_row(
                fmt_bytes(hp.bytes), f"{hp.per_hop_ms:.3f}", f"{hp.fine_ms.median:.3f}", f"{hp.coarse_ms.median:.3f}"
            )
        console.print(h)
    if profile.gpu:
        by_stage: dict[tuple[str, str], list[GpuPoint]] = {}
        for gp in profile.gpu:
            by_stage.setdefault((gp.stage, gp.model), []).append(gp)
        for (stage, model), rows in by_stage.items():
            full = {r.batch: r.latency_ms for r in rows if r.sm_percent == 100 and r.quota_percent == 100}
            at = ", ".join(f"batch {b}: {ms:.2f} ms" for b, ms in sorted(full.items()))
            console.print(f"GPU: {stage} = {model}, {len(rows)} rows ({rows[0].source}); whole V100: {at}")
    cvs = [p.latency_ms.cv for p in profile.points]
    if cvs:
        console.print(
            f"repeatability: latency CV median {100 * float(np.median(cvs)):.1f} %, max {100 * max(cvs):.1f} % "
            f"over {len(cvs)} points ({profile.settings.repeats} repeats each); other work on this machine meanwhile: "
            f"{profile.machine.get('other_work_cores', 0.0):.2f} cores"
        )
    for note in profile.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
