"""What the two granularity experiments (``granularity.py`` on the runtime, ``granularity_gpu_sim.py`` in the
simulator) do alike: a mean with its 95 % confidence interval over repeats, the cost-against-SLO-hit plot of every
arm per workload, and what a workload's history tells (the bursty calibration's shape fitted to it, its burst
index as the adaptive loop's expectation)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The seeds of a workload's history (``workload_history``): seeds no run uses.
HISTORY_SEED = 1000


def workload_history(
    draw: Callable[[float, int], np.ndarray], run_s: float, total_s: float
) -> tuple[np.ndarray, float]:
    """What a deployment has seen of a workload before: runs of it (``draw(seconds, seed)``, seeds from
    ``HISTORY_SEED``) one after another, at least ``total_s`` in all. Returns the arrivals and their span."""
    runs = max(1, math.ceil(total_s / run_s))
    return np.concatenate([draw(run_s, HISTORY_SEED + k) + k * run_s for k in range(runs)]), runs * run_s


def workload_bursts(history: np.ndarray, seconds: float) -> tuple[float, float, float]:
    """The peak, cycle and share of the ``generators.bursts`` shape fitted to a workload's history, as `shoal
    measure --bursty-like` fits them to a user's traffic (``--bursty-like-workload``); ``shape_words`` says them."""
    from shoal.policy.arrivals import burst_curve
    from shoal.workload.generators import fit_bursts

    curve = burst_curve(history, seconds)
    shape = fit_bursts(history, seconds, ((x.scale_s, x.index, x.noise, x.bins) for x in curve))
    if shape is None:
        raise ValueError("the workload's history shows no bursts to fit")
    return shape.peak, shape.cycle_s, shape.share


def shape_words(peak: float, cycle_s: float, share: float) -> str:
    """A bursty calibration shape as the experiments print it."""
    return f"{peak:.2f}x the quiet rate, {share:.0%} of {cycle_s:.1f}-s cycles"


def history_load(history: np.ndarray, seconds: float, piece_s: float | None = None) -> tuple[float, float]:
    """A workload history's mean rate and burst index at ``BURST_SCALE_S`` (less its sampling noise): the adaptive
    loop's expectation (``--expect-history``, ``Horizon(expected_rate=..., expected_burst=...)``). A history stitched
    from runs of ``piece_s`` (``workload_history``) is read within each run: the step from one run's last bin to the
    next one's first is no rise the workload has (the trace's hour, squeezed into every run, ends quieter than it
    starts: read across the seams, text's trace history had an index of 0.018, within them 0.004)."""
    from dataclasses import replace

    from shoal.policy.arrivals import BURST_SCALE_S, credible_burst, observe_load

    seen = observe_load(history, seconds, seconds, BURST_SCALE_S)
    if piece_s is not None and seconds > piece_s:
        seen = replace(seen, burst=pieces_burst_index(history, seconds, piece_s, BURST_SCALE_S))
    return seen.rate, credible_burst(seen)


def pieces_burst_index(arrivals: np.ndarray, seconds: float, piece_s: float, scale_s: float) -> float:
    """``policy.arrivals.burst_index`` of arrivals that are pieces of ``piece_s`` laid end to end over ``seconds``,
    with rises counted only between bins of one piece (whole bins only); NaN with no arrival or under three bins."""
    from shoal.policy.arrivals import burst_index_of_counts

    per_piece = int(piece_s // scale_s + 1e-9)
    pieces = int(seconds // piece_s + 1e-9)
    t = np.asarray(arrivals, dtype=np.float64)
    runs = [np.histogram(t, k * piece_s + scale_s * np.arange(per_piece + 1))[0] for k in range(pieces)]
    return burst_index_of_counts(runs)


def first_load(rate: float, expected: tuple[float, float] | None, window_s: float, horizon_s: float | None) -> Any:
    """The load the experiments choose adaptive's first plan for: the first window's rate, or with an expectation
    (``history_load``), that blended as the loop's horizon blends it at its first window (``Horizon``)."""
    from types import SimpleNamespace

    from shoal.policy.arrivals import BURST_SCALE_S

    if expected is None or horizon_s is None:
        return SimpleNamespace(rate=rate, scv=1.0)
    w = max(0.0, 1.0 - window_s / horizon_s)
    blended = w * expected[0] + (1.0 - w) * rate
    return SimpleNamespace(rate=blended, scv=1.0, burst=w * expected[1], burst_scale_s=BURST_SCALE_S)


def versus(summary: dict[str, dict[str, tuple[float, float]]], arm: str, key: str) -> dict[str, Any]:
    """Adaptive against a reference ``arm`` (an oracle), on the means over repeats: relative SLO hit and cost
    (``slo_hit_vs_KEY``, ``cost_vs_KEY``), and whether it is within 5 % of it (``within_5pct_of_KEY``). Empty
    without that arm."""
    if arm not in summary:
        return {}
    ad_hit, ad_cost = summary["adaptive"]["slo_hit"][0], summary["adaptive"]["cost_usd"][0]
    hit, cost = summary[arm]["slo_hit"][0], summary[arm]["cost_usd"][0]
    return {
        f"slo_hit_vs_{key}": ad_hit / hit - 1 if hit > 0 else math.nan,
        f"cost_vs_{key}": ad_cost / cost - 1 if cost > 0 else math.nan,
        f"within_5pct_of_{key}": ad_hit >= hit * 0.95 and ad_cost <= cost * 1.05,
    }


def load_oracle(runs: Sequence[tuple[Sequence[int], Sequence[Sequence[Any]]]], slo_target: float, window_s: float):
    """The per-window oracle that knows the load in advance and nothing else (``policy.hindsight.load_known_best``)
    over each repeat's fixed runs (``runs``: arrivals and candidates per window, as the free oracle reads them),
    switching free: per repeat, its SLO hit, cost (USD) and plans, read from the windows it chose."""
    from shoal.policy.hindsight import load_known_best

    out = []
    for (arrivals, windows), plans in zip(runs, load_known_best(runs, slo_target), strict=True):
        picked = [next(c for c in cands if c.plan == p) for cands, p in zip(windows, plans, strict=True)]
        requests = sum(arrivals)
        hits = sum(n * c.slo_hit for n, c in zip(arrivals, picked, strict=True))
        out.append(
            {
                "slo_hit": hits / requests if requests else math.nan,
                "cost_usd": sum(c.cost_per_s * window_s for c in picked),
                "plans": plans,
            }
        )
    return out


def add_load_oracle(
    arms: dict[str, dict[str, list[float]]],
    timelines: Sequence[dict[str, Any]],
    runs: Sequence[tuple[Sequence[int], Sequence[Sequence[Any]]]],
    slo_target: float,
    window_s: float,
) -> None:
    """The "load oracle" arm (``load_oracle``) over a workload's repeats; each repeat's plans go in its timeline."""
    a = arms.setdefault("load oracle", {"slo_hit": [], "cost_usd": []})
    for o, timeline in zip(load_oracle(runs, slo_target, window_s), timelines, strict=True):
        a["slo_hit"].append(o["slo_hit"])
        a["cost_usd"].append(o["cost_usd"])
        timeline["load_oracle"] = o["plans"]


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
                fmt="s" if arm == "adaptive" else ("*" if arm.endswith("oracle") else "o"),
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
