"""Rendering for people: status tables and run summaries (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["make_console", "print_status", "fmt_ms", "fmt_usd"]


def make_console() -> Console:
    """A console that stays readable when piped (rich falls back to 80 columns, too narrow for our tables)."""
    c = Console()
    return c if c.is_terminal else Console(width=140)


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def fmt_usd(usd: float) -> str:
    return f"${usd:.6f}"


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
