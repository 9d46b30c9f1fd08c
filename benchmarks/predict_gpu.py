"""GPU latency predictors on whole models held out of training (issue 6, section 1).

On ``../shared/gpu-profiles/rapp_v100_latency.csv`` (59 models x batch 1/2/4/8 x SM 5..100 % x quota 10..100 %):
k-fold cross-validation over *models* (every model is held out exactly once; its rows are never seen in fitting).
A held-out model contributes only its reference latencies (``DEFAULT_REFERENCES``); those rows are not scored.
Predictors: the baseline (sharing ignored), the empirical one (nearest measured models' tables, interpolated; also
with every model as a neighbour, the population's mean shape; with and without anchoring to the references) and the
learned one (gradient-boosted trees; with and without anchoring).

    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/predict_gpu.py            # 10 folds, about 1 min
    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/predict_gpu.py --folds 59 # leave one model out

Writes ``results/predict_gpu.json`` and prints the overall and per-model tables. Results: BENCHMARKS.md, section 10.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import ROOT, console, machine_info, save, table

from shoal.predict.gpu_eval import Evaluation, cross_validate
from shoal.predict.gpu_latency import (
    DEFAULT_REFERENCES,
    BaselineGpuPredictor,
    EmpiricalGpuPredictor,
    GpuLatencyPredictor,
)
from shoal.predict.gpu_trees import LearnedGpuPredictor
from shoal.predict.latency_table import LatencyTable, read_latency_table

TABLE = ROOT.parent / "shared" / "gpu-profiles" / "rapp_v100_latency.csv"


def predictors(refs: Any) -> dict[str, Callable[[LatencyTable], GpuLatencyPredictor]]:
    return {
        "baseline (sharing ignored)": lambda t: BaselineGpuPredictor(refs),
        "empirical, all models (mean shape)": lambda t: EmpiricalGpuPredictor(t, refs, neighbours=len(t.models)),
        "empirical, 3 nearest, not anchored": lambda t: EmpiricalGpuPredictor(t, refs, neighbours=3, anchor=False),
        "empirical, 3 nearest (default)": lambda t: EmpiricalGpuPredictor(t, refs, neighbours=3),
        "learned (trees, default)": lambda t: LearnedGpuPredictor.fit(t, refs),
        "learned, anchored": lambda t: LearnedGpuPredictor.fit(t, refs, anchor=True),
    }


def predict_speed(table: LatencyTable, refs: Any) -> dict[str, float]:
    """Microseconds per predicted point, one call of 800 points (one model's whole grid), median of 5."""
    t = table.of(table.models[0])
    r = np.array([table.points(t.model[0])[p] for p in refs])
    out = {}
    for name, make in (
        ("empirical", lambda: EmpiricalGpuPredictor(table, refs, 3)),
        ("learned", lambda: LearnedGpuPredictor.fit(table, refs)),
    ):
        p = make()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            p.predict_ms(r, t.batch, t.sm, t.quota)
            times.append(time.perf_counter() - t0)
        out[name] = float(np.median(times)) / len(t) * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default=str(TABLE))
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    refs = DEFAULT_REFERENCES
    table_ = read_latency_table(args.table)
    load = os.getloadavg()
    results: dict[str, Evaluation] = {}
    walls: dict[str, float] = {}
    for name, fit in predictors(refs).items():
        t0 = time.perf_counter()
        results[name] = cross_validate(table_, fit, k=args.folds, seed=args.seed)
        walls[name] = time.perf_counter() - t0
        console.print(f"[dim]{name}: MAPE {results[name].mape:.1f} % in {walls[name]:.1f} s[/]")
    rows = []
    for name, e in results.items():
        per = e.model_mapes
        rows.append(
            [
                name,
                f"{e.mape:.1f}",
                f"{e.median_ape:.1f}",
                f"{e.p90_ape:.1f}",
                f"{np.median(per):.1f}",
                f"{per.max():.1f} ({e.per_model[int(per.argmax())].model})",
                f"{walls[name]:.1f}",
            ]
        )
    cols = ["predictor", "MAPE %", "median APE %", "p90 APE %", "median model MAPE %", "worst model MAPE %", "wall s"]
    table(f"latency error on whole held-out models, {args.folds}-fold over {len(table_.models)} models", cols, rows)
    names = list(results)
    per_model = [
        [m.model, m.rows, *(f"{results[n].per_model[i].mape:.1f}" for n in names)]
        for i, m in enumerate(results[names[0]].per_model)
    ]
    table("MAPE % per held-out model", ["model", "rows", *names], per_model)
    speed = predict_speed(table_, refs)
    console.print(f"prediction cost, us per point (800 points per call): {speed}")
    save(
        "predict_gpu",
        {
            "machine": machine_info(),
            "loadavg_at_start": load,
            "loadavg_at_end": os.getloadavg(),
            "table": args.table,
            "folds": args.folds,
            "seed": args.seed,
            "references": [list(r) for r in refs],
            "results": {n: {**e.to_dict(), "wall_s": walls[n]} for n, e in results.items()},
            "predict_us_per_point": speed,
        },
    )


if __name__ == "__main__":
    main()
