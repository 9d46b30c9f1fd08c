"""Which features and tree sizes the learned application predictor needs once bursty runs are in its training set:
leave-one-run-out cross-validation on a training split of ``benchmarks/predict_heldout.py`` (no held-out run looked at).

A run's whole-run row and its windows are held out together (they share the run's noise). Per feature set and tree
setting: mean, median and 90th percentile of |log(predicted / measured)| of p99 and of cost per second, over all
rows and over the bursty runs' rows; the analytical model's own error beside them. Feature sets: the defaults, with
the SCV of the arrivals, with the peak rate (the largest 2-s count over the mean count, a load figure a deployment
could know) and with both. The peak ratio is not a feature of ``shoal.predict.app_learned`` (``Load`` carries only
rate, SCV and input mix); it is computed here, from the arrivals, to learn whether it would be worth adding.

    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/predict_learned_cv.py --train repeat0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, console, machine_info, save
from predict_heldout import SPLITS, AppRuns, observations, read_runs

from shoal.predict import app_learned as al
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_learned import DEFAULT_FEATURES, DEFAULT_PARAMS, ObservedRun
from shoal.predict.gpu_trees import fit_model

PEAK_BIN_S = 2.0
TARGETS = ("p99", "cost")


def training_rows(apps: list[AppRuns], split: str, window_s: float) -> tuple[list[ObservedRun], list[float]]:
    """The split's training rows (as ``predict_heldout.training_runs``) and each row's peak ratio."""
    rows: list[ObservedRun] = []
    peaks: list[float] = []
    for a in apps:
        items = [(f, r, None) for f, r in a.calibration]
        if split == "repeat0":
            items += [(f, r, w) for f, r in a.fixed if f.repeat == 0 for w in (None, window_s)]
        for f, r, w in items:
            for o in observations(a, f, r, w):
                start = float(o.source.rsplit("@", 1)[1][:-1]) if "@" in o.source else 0.0
                end = start + window_s if "@" in o.source else f.seconds
                t = r.arrival_s[(r.arrival_s >= start) & (r.arrival_s < end)]
                counts = np.histogram(t, bins=np.arange(start, end + 1e-9, PEAK_BIN_S))[0]
                peaks.append(float(counts.max() / max(counts.mean(), 1e-9)))
                rows.append(o)
    return rows, peaks


def cross_validate(x: np.ndarray, ys: dict[str, np.ndarray], groups: np.ndarray, params: dict[str, Any]) -> dict:
    """Out-of-fold |residual| per row and target: each run (group) predicted by trees fitted without it."""
    err = {t: np.zeros(len(groups)) for t in ys}
    for g in sorted(set(groups)):
        held = groups == g
        for t, y in ys.items():
            model = fit_model(x[~held], y[~held], seed=0, **params)
            err[t][held] = np.abs(model.predict(x[held]) - y[held])
    return err


def stats(err: dict[str, np.ndarray], bursty: np.ndarray) -> dict[str, float]:
    out = {}
    for t, e in err.items():
        out |= {
            f"{t}_mean": float(e.mean()),
            f"{t}_median": float(np.median(e)),
            f"{t}_p90": float(np.percentile(e, 90)),
            f"{t}_bursty_mean": float(e[bursty].mean()) if bursty.any() else float("nan"),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=RESULTS / "granularity_runs", help="granularity.py's runs")
    ap.add_argument("--profiles-from", type=Path, default=RESULTS, help="folder of profile_granularity_APP.json")
    ap.add_argument("--train", default="repeat0", choices=SPLITS, help="the training split to cross-validate on")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per window of the training windows")
    args = ap.parse_args()
    apps = [a for a in read_runs(args.runs, args.profiles_from) if a.calibration and a.fixed]
    if not apps:
        sys.exit(f"no app under {args.runs} has calibration runs, fixed runs and a profile: run granularity.py first")
    rows, peaks = training_rows(apps, args.train, args.window)
    analytical = AnalyticalPredictor()
    preds = [analytical.predict(r.profile, r.plan, r.load, r.slo) for r in rows]
    feats = [al.features_of(r.plan, p) | {"peak_ratio": k} for r, p, k in zip(rows, preds, peaks, strict=True)]
    groups = np.array([r.source.rsplit("@", 1)[0] for r in rows])
    bursty = np.array(["-bursty-" in g for g in groups])
    ys = {t: np.array([al._residual(t, r, p) for r, p in zip(rows, preds, strict=True)]) for t in TARGETS}
    base = list(DEFAULT_FEATURES)
    sets = {"default": base, "+scv": [*base, "scv"], "+peak": [*base, "peak_ratio"]}
    sets["+scv+peak"] = [*base, "scv", "peak_ratio"]
    settings = [{"min_samples_leaf": m, "max_leaf_nodes": n} for m in (3, 5, 10) for n in (4, 8)]
    results: list[dict[str, Any]] = [{"features": "analytical", **stats({t: np.abs(y) for t, y in ys.items()}, bursty)}]
    for name, names in sets.items():
        x = np.array([[f[n] for n in names] for f in feats], dtype=np.float64)
        for s in settings if name in ("default", "+scv") else settings[:1]:
            err = cross_validate(x, ys, groups, DEFAULT_PARAMS | s)
            results.append({"features": name, **s, **stats(err, bursty)})
            r = results[-1]
            console.print(
                f"{name:10s} leaf>={s['min_samples_leaf']:2d} leaves<={s['max_leaf_nodes']}  "
                f"p99 mean {r['p99_mean']:.3f} median {r['p99_median']:.3f} p90 {r['p99_p90']:.3f} "
                f"bursty {r['p99_bursty_mean']:.3f} | cost mean {r['cost_mean']:.3f} p90 {r['cost_p90']:.3f}"
            )
    a = results[0]
    console.print(
        f"analytical                    p99 mean {a['p99_mean']:.3f} median {a['p99_median']:.3f} "
        f"p90 {a['p99_p90']:.3f} bursty {a['p99_bursty_mean']:.3f} | cost mean {a['cost_mean']:.3f} "
        f"p90 {a['cost_p90']:.3f}"
    )
    console.print(f"{len(rows)} rows, {len(set(groups))} runs; load average {os.getloadavg()}")
    save(
        "predict_learned_cv",
        {
            "machine": machine_info(),
            "loadavg": os.getloadavg(),
            "command": " ".join(sys.argv),
            "rows": len(rows),
            "runs": len(set(groups)),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
