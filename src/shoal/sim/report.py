"""A simulation's report: ``summary.json`` and PNG plots (latency CDF, SLO hit rate and cost over time, instances
and GPU occupancy over time). Plots need matplotlib (a dependency of Shoal); it is imported only here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shoal.sim.result import SimResult

__all__ = ["report_doc", "write_report"]


def report_doc(result: SimResult, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document: settings, summary (milliseconds for latency) and the time series."""
    s = result.series
    done = np.asarray(s["done"], dtype=float)
    hits = np.asarray(s["slo_hits"], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(done > 0, hits / np.maximum(done, 1), np.nan)
    series = {
        "t_s": s["t"],
        "instances": s["instances"],
        "gpu_occupancy": s["gpu_occupancy"],
        "resource_cost_usd": s["cost_usd"],
        "user_bill_usd": s["bill_usd"],
        "finished": s["done"],
        "slo_hit_rate": [None if np.isnan(v) else float(v) for v in rate],
    }
    return {"meta": meta or {}, "summary": result.summary(), "series": series}


def write_report(result: SimResult, out_dir: str | Path, meta: dict[str, Any] | None = None) -> list[Path]:
    """Write ``summary.json`` and the plots into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = report_doc(result, meta)
    paths = [out / "summary.json"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_min = np.asarray(doc["series"]["t_s"]) / 60
    lat = np.sort(result.latencies()) * 1e3

    fig, ax = plt.subplots(figsize=(6, 4))
    if lat.size:
        ax.plot(lat, np.arange(1, lat.size + 1) / lat.size)
        ax.set_xscale("log")
    for slo in sorted(set(result.slo_s)):
        ax.axvline(slo * 1e3, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="latency (ms)", ylabel="fraction of requests", title="Latency CDF (dashed: SLO)")
    paths.append(_save(fig, out / "latency_cdf.png"))

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    rate = [np.nan if v is None else v for v in doc["series"]["slo_hit_rate"]]
    a1.plot(t_min, rate)
    a1.set(ylabel="SLO hit rate", ylim=(0, 1.05))
    a2.plot(t_min, doc["series"]["resource_cost_usd"], label="resource cost")
    a2.plot(t_min, doc["series"]["user_bill_usd"], label="user bill")
    a2.set(xlabel="time (min)", ylabel="USD (cumulative)")
    a2.legend()
    paths.append(_save(fig, out / "slo_and_cost.png"))

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    a1.step(t_min, doc["series"]["instances"], where="post")
    a1.set(ylabel="instances")
    a2.plot(t_min, doc["series"]["gpu_occupancy"])
    a2.set(xlabel="time (min)", ylabel="GPU occupancy", ylim=(0, 1.05))
    paths.append(_save(fig, out / "instances_and_gpu.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
