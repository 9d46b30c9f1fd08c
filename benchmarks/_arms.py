"""What the two granularity experiments (``granularity.py`` on the runtime, ``granularity_gpu_sim.py`` in the
simulator) report alike: a mean with its 95 % confidence interval over repeats, and the cost-against-SLO-hit plot of
every arm per workload."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def ci95(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (Student t); NaN half-width with one value."""
    a = np.asarray(xs, dtype=float)
    if a.size < 2:
        return float(a.mean()), float("nan")
    from scipy import stats

    return float(a.mean()), float(stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))


def plot_arms(
    workloads: Sequence[dict[str, Any]],
    out: Path,
    cost_scale: float = 1.0,
    cost_label: str = "resource cost (USD per run)",
    label: Callable[[str], str] = str,
) -> None:
    """One panel per workload: each arm's mean resource cost (x) against its SLO hit rate (y), 95 % CI bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not workloads:
        return
    cols = min(3, len(workloads))
    rows = math.ceil(len(workloads) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    for ax, w in zip(axes.flat, workloads, strict=False):
        for arm, s in w["summary"].items():
            (h, hci), (c, cci) = s["slo_hit"], s["cost_usd"]
            ax.errorbar(
                c * cost_scale,
                h,
                xerr=cci * cost_scale if math.isfinite(cci) else None,
                yerr=hci if math.isfinite(hci) else None,
                fmt="s" if arm == "adaptive" else ("*" if arm == "oracle" else "o"),
                capsize=3,
                label=label(arm),
            )
        ax.set_title(f"{w['app']} / {w['load']}")
        ax.set_xlabel(cost_label)
        ax.set_ylabel("SLO hit rate")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def arms_table(
    workloads: Sequence[dict[str, Any]],
    cost_unit: str,
    cost_scale: float = 1.0,
    hit_digits: int = 3,
    cost_digits: int = 2,
) -> list[str]:
    """The markdown table of every arm per workload: SLO hit rate and cost, each mean ± 95 % CI half-width."""
    lines = [f"| app | load | arm | SLO hit (95% CI) | cost {cost_unit} (95% CI) |", "|---|---|---|---|---|"]
    for w in workloads:
        for arm, s in w["summary"].items():
            (h, hci), (c, cci) = s["slo_hit"], s["cost_usd"]
            mark = " (best static)" if arm == w["best_static"] else ""
            hit = f"{h:.{hit_digits}f} ± {hci:.{hit_digits}f}"
            cost = f"{c * cost_scale:.{cost_digits}f} ± {cci * cost_scale:.{cost_digits}f}"
            lines.append(f"| {w['app']} | {w['load']} | {arm}{mark} | {hit} | {cost} |")
    return lines
