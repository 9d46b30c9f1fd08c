"""The analytical application predictor against runs of the real embedded runtime (issue 6, section 1).

The runs are those of ``benchmarks/sim_validation.py`` (BENCHMARKS.md section 7): two two-stage applications
(``sleepy``: stages that sleep a lognormal time; ``spin``: CPU-bound stages), plans fine and coarse, three loads each
(Poisson low, Poisson high, MMPP), 33 s each, on the embedded runtime, with the profile each app was calibrated from.
None of these runs was used to build the predictor: it reads only the profile, the plan and the load (rate and SCV of
the inter-arrival times of the same seeded arrivals), so every run is held out.

    .venv/bin/python benchmarks/predict_app.py --runs results/sim_validation.json

Prints predicted against measured p50, p99, SLO hit rate, mean instances, resource cost per second and user bill per
request, with relative errors; writes ``results/predict_app.json``. Results: BENCHMARKS.md, section 10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, console, machine_info, save, table
from sim_validation import APPS, loads

from shoal.app import FunctionConfig, Plan
from shoal.predict import read_profile
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_model import Load


def load_of(times: np.ndarray, seconds: float) -> Load:
    gaps = np.diff(np.sort(times))
    return Load(len(times) / seconds, scv=float(gaps.var() / gaps.mean() ** 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "results" / "sim_validation.json")
    ap.add_argument("--seed", type=int, default=7, help="the seed sim_validation.py drew its arrivals with")
    args = ap.parse_args()
    doc = json.loads(args.runs.read_text())
    base = args.runs.resolve().parent.parent
    s = doc["settings"]
    cfg = FunctionConfig(keep_alive_s=s["keep_alive_s"], max_instances=s["max_instances"])
    end_s = s["seconds"] + s["drain_s"]
    predictor = AnalyticalPredictor()
    rows, out = [], []
    t0 = time.perf_counter()
    for name, info in doc["apps"].items():
        app = APPS[name]()
        profile = read_profile(base / info["profile"])
        arrivals = loads(name, s["seconds"], args.seed)
        for r in (r for r in doc["rows"] if r["app"] == name):
            plan = Plan.fine(app, default=cfg) if r["plan"] == "fine" else Plan.coarse(app, default=cfg)
            times = arrivals[r["load"]]
            assert len(times) == r["requests"], "arrivals differ from the recorded run: pass its --seed"
            load = load_of(times, s["seconds"])
            p = predictor.predict(profile, plan, load)
            rt = r["runtime"]
            pred = {
                "p50_ms": p.latency_s[50] * 1e3,
                "p99_ms": p.latency_s[99] * 1e3,
                "slo_hit_rate": p.slo_hit_rate,
                "mean_instances": p.mean_instances,
                "cost_per_s": p.cost_per_s,
                "bill_per_request": p.bill_per_request,
            }
            meas = {
                "p50_ms": rt["p50_ms"],
                "p99_ms": rt["p99_ms"],
                "slo_hit_rate": rt["slo_hit_rate"],
                "mean_instances": rt["mean_instances"],
                "cost_per_s": rt["cost_usd"] / end_s,
                "bill_per_request": rt["bill_usd"] / rt["requests"],
            }
            err = {k: (pred[k] - meas[k]) / meas[k] for k in pred}
            out.append(
                {
                    "app": name,
                    "plan": r["plan"],
                    "load": r["load"],
                    "rate_rps": load.rate_rps,
                    "scv": load.scv,
                    "predicted": pred,
                    "runtime": meas,
                    "rel_error": err,
                }
            )
            rows.append(
                [name, r["plan"], r["load"], f"{load.scv:.2f}"]
                + [f"{pred[k]:.3g} / {meas[k]:.3g} ({err[k]:+.0%})" for k in ("p50_ms", "p99_ms")]
                + [f"{pred['slo_hit_rate']:.3f} / {meas['slo_hit_rate']:.3f}"]
                + [f"{pred[k]:.2f} / {meas[k]:.2f} ({err[k]:+.0%})" for k in ("mean_instances",)]
                + [f"{err[k]:+.0%}" for k in ("cost_per_s", "bill_per_request")]
            )
    wall = time.perf_counter() - t0
    cols = [
        "app",
        "plan",
        "load",
        "scv",
        "p50 ms pred / run",
        "p99 ms pred / run",
        "SLO hit pred / run",
        "instances pred / run",
        "cost/s err",
        "bill/req err",
    ]
    table("analytical predictor against the embedded runtime (runs held out)", cols, rows)

    def mape(key: str, sel: list[dict[str, Any]]) -> float:
        return float(np.mean([abs(o["rel_error"][key]) for o in sel]) * 100)

    poisson = [o for o in out if o["load"].startswith("poisson")]
    summary = {
        group: {k: mape(k, sel) for k in ("p50_ms", "p99_ms", "mean_instances", "cost_per_s", "bill_per_request")}
        | {
            "slo_hit_abs_error": float(
                np.mean([abs(o["predicted"]["slo_hit_rate"] - o["runtime"]["slo_hit_rate"]) for o in sel])
            )
        }
        for group, sel in (("all", out), ("poisson", poisson), ("mmpp", [o for o in out if o not in poisson]))
    }
    console.print({g: {k: round(v, 3) for k, v in d.items()} for g, d in summary.items()})
    console.print(f"{len(out)} predictions in {wall:.2f} s")
    save(
        "predict_app",
        {
            "machine": machine_info(),
            "loadavg": os.getloadavg(),
            "runs": str(args.runs),
            "runs_date": doc["machine"].get("date"),
            "rows": out,
            "summary": summary,
            "wall_s": wall,
        },
    )


if __name__ == "__main__":
    main()
