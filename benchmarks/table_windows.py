"""The runtime experiment's measured table against what its fixed plans did, window by window (issue 6).

`granularity.py` reports the table's error at each fixed run's whole load; the adaptive loop, though, prices the
load of its horizon (90 s), whose rate and burst index wander within a run. This reads the fixed runs kept in
``results/OUT_runs/APP/`` and, every 10 s, prices the plan at the 90 s behind (rate and credible burst index, as the
loop reads them) and sets it beside the SLO hit rate of the requests that arrived in those 90 s.

Between the table's Poisson class (index 0) and its bursty class, the table is linear in the burst index. The
``geometric`` column is the alternative it was weighed against (docs/granularity.md, "Between burst classes"): the
SLO miss rate interpolated geometrically (log-linear; a queue's tail probability falls exponentially with its
spare capacity), floored at 1e-4. It needs a table of two burst classes, as the experiment calibrates.

    env PYTHONPATH=src .venv/bin/python benchmarks/table_windows.py --out granularity_s19t --app text
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from _common import RESULTS, console, save

from shoal.app import SLO
from shoal.policy.arrivals import credible_burst, observe_load
from shoal.predict.measured import MeasuredPredictor

HORIZON_S = 90.0
STEP_S = 10.0
SLO_TARGET = 0.99
MISS_FLOOR = 1e-4


def geometric(hit_lo: float, hit_hi: float, w: float) -> float:
    """SLO hit between two classes with the miss rate interpolated log-linearly (weight ``w`` towards ``hi``)."""
    m_lo, m_hi = max(1.0 - hit_lo, MISS_FLOOR), max(1.0 - hit_hi, MISS_FLOOR)
    r = m_hi / m_lo
    g = w if abs(r - 1.0) < 1e-12 else (r**w - 1.0) / (r - 1.0)
    return min(1.0, max(0.0, hit_lo + (hit_hi - hit_lo) * g))


def windows(table: MeasuredPredictor, run_file: Path, slo_s: float) -> list[dict[str, Any]]:
    doc = json.loads(run_file.read_text())
    run = doc["run"]
    arrivals = np.asarray(run["arrival_s"], dtype=np.float64)
    latency = np.array([math.nan if x is None else x for x in run["latency_s"]], dtype=np.float64)
    ok = (np.asarray(run["status"]) == 200) & (latency <= slo_s)
    out = []
    for end in np.arange(HORIZON_S, float(doc["seconds"]) + 1e-9, STEP_S):
        load = observe_load(arrivals, float(end), HORIZON_S, table.burst_scale_s)
        inside = (arrivals > end - HORIZON_S) & (arrivals <= end)
        score = table.predict(doc["plan"], load)
        w = score.details.get("burst_weight")
        geo = score.slo_hit
        if w is not None:  # the two classes' figures at this rate: at index 0 and beyond the bursty class
            at = {"rate": load.rate, "scv": 1.0, "burst_scale_s": table.burst_scale_s}
            lo = table.predict(doc["plan"], SimpleNamespace(**at, burst=0.0)).slo_hit
            hi = table.predict(doc["plan"], SimpleNamespace(**at, burst=1e9)).slo_hit
            geo = geometric(lo, hi, float(w))
        out.append(
            {
                "load": doc["load"],
                "plan": doc["plan"],
                "end_s": float(end),
                "rate": load.rate,
                "burst": credible_burst(load),
                "between_classes": w is not None and 0.0 < float(w) < 1.0,
                "measured": float(ok[inside].mean()) if inside.any() else math.nan,
                "linear": score.slo_hit,
                "geometric": geo,
            }
        )
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    measured = np.array([r["measured"] for r in rows])
    between = np.array([r["between_classes"] for r in rows])
    out: dict[str, Any] = {"windows": len(rows), "between_classes": int(between.sum())}
    for name in ("linear", "geometric"):
        err = np.array([r[name] for r in rows]) - measured
        agree = (np.array([r[name] for r in rows]) >= SLO_TARGET) == (measured >= SLO_TARGET)
        out[name] = {
            "mae": float(np.mean(np.abs(err))),
            "bias": float(np.mean(err)),
            "mae_between": float(np.mean(np.abs(err[between]))) if between.any() else math.nan,
            "bias_between": float(np.mean(err[between])) if between.any() else math.nan,
            "target_agrees": float(np.mean(agree)),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the granularity.py result whose runs and table to read")
    ap.add_argument("--app", default="text")
    ap.add_argument("--slo-ms", type=float, default=None, help="the app's SLO (default: the table's)")
    args = ap.parse_args()
    table_path = RESULTS / f"{args.out}_{args.app}_measured.json"
    runs_dir = RESULTS / f"{args.out}_runs" / args.app
    if not table_path.exists() or not runs_dir.is_dir():
        raise SystemExit(f"need {table_path} and {runs_dir}/ (run benchmarks/granularity.py --out {args.out} first)")
    table = MeasuredPredictor.load(table_path)
    slo = args.slo_ms / 1e3 if args.slo_ms else SLO.parse(str(table.slo)).latency_s
    rows = [r for f in sorted(runs_dir.glob("fixed-*.json")) for r in windows(table, f, slo)]
    by_load = {load: summary([r for r in rows if r["load"] == load]) for load in dict.fromkeys(r["load"] for r in rows)}
    for load, s in by_load.items():
        console.print(
            f"{args.app}/{load}: {s['windows']} windows of {HORIZON_S:g} s, {s['between_classes']} between classes"
        )
        for name in ("linear", "geometric"):
            e = s[name]
            console.print(
                f"  {name:9s} SLO hit error: mean |e| {e['mae']:.4f}, bias {e['bias']:+.4f}; between classes "
                f"{e['mae_between']:.4f}, {e['bias_between']:+.4f}; says met/missed (target {SLO_TARGET}) as "
                f"measured in {100 * e['target_agrees']:.0f} %"
            )
    save(f"table_windows_{args.out}_{args.app}", {"summary": by_load, "windows": rows})


if __name__ == "__main__":
    main()
