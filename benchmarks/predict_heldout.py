"""Held-out accuracy of the three application predictors on runs of the real runtime (issue 6, section 1).

The runs are those ``benchmarks/granularity.py`` keeps under ``results/granularity_runs/APP/*.json``:

- **training**: the calibration runs (each plan under Poisson load at the app's three rates): what a deployment
  measures up front. The empirical predictor is its table of these runs (``ReplayResult.measurement``, as the
  experiment builds it); the learned predictor is fitted on those of all apps; the analytical predictor needs none,
  only each app's profile (``--profiles-from DIR``: ``DIR/profile_granularity_APP.json``, made by ``shoal profile``
  with every plan of the experiment).
- **test**: every fixed-plan run (steady, bursty, trace loads), none of which any predictor has seen, scored whole
  and per window of ``--window`` seconds (10 s).

Each predictor is given what a deployment would know of the load: the rate and the SCV of the inter-arrival gaps
(over the whole run, or the window) and the input mix the experiment sends (small, medium and large in turn). Per
predictor, overall, per app and per load pattern: median and 90th percentile of the relative error of p99 and of
resource cost per second, and of the absolute error of the SLO hit rate. Writes ``results/predict_heldout.json``,
``results/predict_heldout.md`` (a markdown table ready for BENCHMARKS.md), ``results/predict_heldout.png`` (predicted
against measured p99 and cost, whole runs) and the fitted learned predictor (``results/predict_heldout_learned.json``).

    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/predict_heldout.py --profiles-from results
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, console, machine_info, save
from granularity import fn_config

import shoal
from shoal.app import Plan
from shoal.predict import read_profile
from shoal.predict.analytical import AnalyticalPredictor
from shoal.predict.app_learned import LearnedPredictor, ObservedRun, observed_run
from shoal.predict.app_model import PredictError
from shoal.predict.measured import MeasuredError, MeasuredPredictor
from shoal.predict.profile import Profile
from shoal.runtime.profiler.targets import load_target
from shoal.runtime.replay import ReplayResult

#: "learned, other apps": fitted on the calibration runs of the other applications only (how it does on an
#: application it has never seen a run of); scored when there are two applications or more.
PREDICTORS = ("analytical", "empirical", "learned", "learned, other apps")
#: The experiment sends inputs small, medium, large in turn (granularity.py: ``inputs[i % 3]``).
MIX = {"small": 1.0, "medium": 1.0, "large": 1.0}


@dataclass
class AppRuns:
    name: str
    app: shoal.App
    profile: Profile
    plans: dict[str, Plan]
    calibration: list[tuple[dict[str, Any], ReplayResult]]
    fixed: list[tuple[dict[str, Any], ReplayResult]]


def read_runs(runs_dir: Path, profiles_dir: Path) -> list[AppRuns]:
    """Every app with runs and a profile; an app without a profile is skipped with the command that makes one."""
    out = []
    for app_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        docs = []
        for f in sorted(app_dir.glob("*.json")):
            try:
                docs.append(json.loads(f.read_text()))
            except ValueError:  # the experiment may be writing it right now
                console.print(f"[yellow]{f}: not (yet) valid JSON; skipped[/]")
        if not docs:
            continue
        prof_path = profiles_dir / f"profile_granularity_{app_dir.name}.json"
        plans_used = sorted({d["plan"] for d in docs if d["kind"] != "adaptive"})
        if not prof_path.exists():
            flags = " ".join(f"--plan {p}" for p in plans_used)
            console.print(
                f"[yellow]{app_dir.name}: no profile {prof_path}; skipped. Make it with: "
                f"flock /tmp/shoal-bench.lock .venv/bin/shoal profile {docs[0]['ref']} {flags} --out {prof_path}[/]"
            )
            continue
        app = load_target(str(ROOT / docs[0]["ref"])).app
        plans = {label: Plan.parse(app, label, default=fn_config()) for label in plans_used}
        pairs = [(d, ReplayResult.from_dict(d["run"])) for d in docs]
        out.append(
            AppRuns(
                app_dir.name,
                app,
                read_profile(prof_path),
                plans,
                [(d, r) for d, r in pairs if d["kind"] == "calibrate"],
                [(d, r) for d, r in pairs if d["kind"] == "fixed"],
            )
        )
    return out


def observations(a: AppRuns, doc: dict[str, Any], res: ReplayResult, window_s: float | None) -> list[ObservedRun]:
    """The run whole (``window_s`` None) or its full windows; windows where nothing arrived are left out."""
    plan, seconds = a.plans[doc["plan"]], float(doc["seconds"])
    name = f"{a.name}/{doc['kind']}-{doc['load']}-{doc.get('rate', '')}-{doc['repeat']}-{doc['plan']}"
    if window_s is None:
        return [observed_run(res, a.profile, plan, start=0.0, end=seconds, input_mix=MIX, source=name)]
    out = []
    for k in range(int(seconds // window_s)):
        s, e = k * window_s, (k + 1) * window_s
        if ((res.arrival_s >= s) & (res.arrival_s < e)).any():
            out.append(observed_run(res, a.profile, plan, start=s, end=e, input_mix=MIX, source=f"{name}@{s:g}s"))
    return out


def predict_all(
    run: ObservedRun,
    analytical: AnalyticalPredictor,
    learned: dict[str, LearnedPredictor],
    table: MeasuredPredictor,
) -> dict[str, dict[str, float] | None]:
    a = analytical.predict(run.profile, run.plan, run.load, run.slo)
    out: dict[str, dict[str, float] | None] = {
        "analytical": {"p99_s": a.p99_s, "cost_per_s": a.cost_per_s, "slo_hit": a.slo_hit_rate},
    }
    try:
        s = table.predict(run.plan.label, SimpleNamespace(rate=run.load.rate_rps, scv=run.load.scv))
        out["empirical"] = {"p99_s": s.details["p99_ms"] / 1e3, "cost_per_s": s.cost_per_s, "slo_hit": s.slo_hit}
    except MeasuredError:
        out["empirical"] = None  # a plan never calibrated: the empirical predictor refuses it
    for name, lp in learned.items():
        p = lp.correct(run.plan, a)
        out[name] = {"p99_s": p.p99_s, "cost_per_s": p.cost_per_s, "slo_hit": p.slo_hit_rate}
    return out


def errors(pred: dict[str, float], run: ObservedRun) -> dict[str, float]:
    """Relative errors of p99 and cost per second, absolute error of the SLO hit rate (NaN where undefined: a run
    whose requests all failed has no p99, one that cost nothing no relative cost error)."""

    def rel(p: float, m: float) -> float:
        if not (math.isfinite(m) and m > 0):
            return math.nan
        return abs(p / m - 1.0)  # an infinite prediction (requests predicted lost) of a finite p99: an infinite error

    return {
        "p99": rel(pred["p99_s"], run.p99_s),
        "cost": rel(pred["cost_per_s"], run.cost_per_s),
        "slo_hit": abs(pred["slo_hit"] - run.slo_hit),
    }


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per predictor and metric: n, median and 90th percentile of the errors (undefined ones, NaN, left out; infinite
    ones, a finite p99 predicted infinite, kept and counted)."""
    rows = list(rows)
    out: dict[str, dict[str, float]] = {}
    for p in PREDICTORS:
        d: dict[str, float] = {}
        for m in ("p99", "cost", "slo_hit"):
            xs = np.array([r["errors"][p][m] for r in rows if r["errors"].get(p)], dtype=np.float64)
            ok = xs[~np.isnan(xs)]
            d[f"{m}_n"] = int(ok.size)
            d[f"{m}_infinite"] = int(np.isinf(ok).sum())
            # inverted CDF: a percentile is one of the errors, so an infinite error counts without making NaN
            d[f"{m}_median"] = float(np.percentile(ok, 50, method="inverted_cdf")) if ok.size else math.nan
            d[f"{m}_p90"] = float(np.percentile(ok, 90, method="inverted_cdf")) if ok.size else math.nan
        if d["p99_n"] or d["cost_n"] or d["slo_hit_n"]:
            out[p] = d
    return out


def groups(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    out = {"all": summarise(rows)}
    for key in ("app", "load"):
        for v in sorted({r[key] for r in rows}):
            out[f"{key}={v}"] = summarise(r for r in rows if r[key] == v)
    return out


def markdown(summary: dict[str, dict[str, dict[str, dict[str, float]]]], n_rows: dict[str, int]) -> str:
    def pct(v: float) -> str:
        return "-" if math.isnan(v) else "inf" if math.isinf(v) else f"{v * 100:.0f} %"

    def ab(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.3f}"

    lines = []
    for level, by_group in summary.items():
        lines += [
            f"**{level}** ({n_rows[level]} held-out {level})",
            "",
            "| group | predictor | p99 rel. error median / p90 | cost/s rel. error median / p90 | "
            "SLO hit abs. error median / p90 |",
            "|---|---|---|---|---|",
        ]
        for g, by_pred in by_group.items():
            for p, d in by_pred.items():
                lines.append(
                    f"| {g} | {p} | {pct(d['p99_median'])} / {pct(d['p99_p90'])} | "
                    f"{pct(d['cost_median'])} / {pct(d['cost_p90'])} | "
                    f"{ab(d['slo_hit_median'])} / {ab(d['slo_hit_p90'])} |"
                )
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, key, unit, scale in ((axes[0], "p99_s", "p99 (ms)", 1e3), (axes[1], "cost_per_s", "cost (USD/h)", 3600)):
        lo, hi = math.inf, 0.0
        for p, marker in zip(PREDICTORS, "os^D", strict=True):
            pts = [
                (r["measured"][key] * scale, r["predicted"][p][key] * scale)
                for r in rows
                if r["predicted"].get(p) and math.isfinite(r["measured"][key]) and r["measured"][key] > 0
            ]
            if pts:
                x, y = np.array(pts).T
                ax.scatter(x, y, marker=marker, s=18, alpha=0.7, label=p)
                lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
        if hi > 0:
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {unit}")
        ax.set_ylabel(f"predicted {unit}")
        ax.legend(fontsize=8)
    fig.suptitle("held-out fixed-plan runs of the runtime (whole runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=RESULTS / "granularity_runs", help="granularity.py's runs")
    ap.add_argument("--profiles-from", type=Path, default=RESULTS, help="folder of profile_granularity_APP.json")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per window of the per-window scores")
    ap.add_argument("--samples", type=int, default=20_000, help="the analytical predictor's samples per prediction")
    ap.add_argument("--save", type=Path, default=RESULTS / "predict_heldout_learned.json", help="the learned model")
    args = ap.parse_args()
    if not args.runs.is_dir():
        sys.exit(f"no runs at {args.runs}: run benchmarks/granularity.py first (it keeps its runs there)")
    apps = read_runs(args.runs, args.profiles_from)
    apps = [a for a in apps if a.calibration and a.fixed]
    if not apps:
        sys.exit(f"no app under {args.runs} has calibration runs, fixed runs and a profile: nothing to score")
    t0 = time.perf_counter()
    analytical = AnalyticalPredictor(samples=args.samples)
    train = [o for a in apps for d, r in a.calibration for o in observations(a, d, r, None)]
    try:
        learned = LearnedPredictor.fit(train, analytical)
    except PredictError as e:
        sys.exit(f"cannot fit the learned predictor: {e}")
    args.save.parent.mkdir(parents=True, exist_ok=True)
    learned.save(args.save)
    fit_s = time.perf_counter() - t0
    others = {a.name: [o for o in train if not o.source.startswith(f"{a.name}/")] for a in apps}
    learned_by_app = {
        a.name: {"learned": learned}
        | ({"learned, other apps": LearnedPredictor.fit(others[a.name], analytical)} if len(apps) > 1 else {})
        for a in apps
    }
    tables = {
        a.name: MeasuredPredictor(
            [r.measurement(a.app.slo.latency_s, 0.0, float(d["seconds"])) for d, r in a.calibration]
        )
        for a in apps
    }
    levels: dict[str, list[dict[str, Any]]] = {"runs": [], "windows": []}
    for a in apps:
        for d, res in a.fixed:
            for level, window in (("runs", None), ("windows", args.window)):
                for run in observations(a, d, res, window):
                    preds = predict_all(run, analytical, learned_by_app[a.name], tables[a.name])
                    measured = {"p99_s": run.p99_s, "cost_per_s": run.cost_per_s, "slo_hit": run.slo_hit}
                    levels[level].append(
                        {
                            "app": a.name,
                            "load": d["load"],
                            "repeat": d["repeat"],
                            "plan": d["plan"],
                            "source": run.source,
                            "rate_rps": run.load.rate_rps,
                            "scv": run.load.scv,
                            "measured": measured,
                            "predicted": preds,
                            "errors": {p: errors(v, run) for p, v in preds.items() if v is not None},
                        }
                    )
    wall = time.perf_counter() - t0
    summary = {level: groups(rows) for level, rows in levels.items() if rows}
    md = markdown(summary, {k: len(v) for k, v in levels.items()})
    (RESULTS / "predict_heldout.md").write_text(md + "\n")
    plot(levels["runs"], RESULTS / "predict_heldout.png")
    console.print(md)
    console.print(
        f"{len(train)} training runs, {len(levels['runs'])} held-out runs, {len(levels['windows'])} windows; "
        f"fit {fit_s:.1f} s, all {wall:.1f} s; load average {os.getloadavg()}"
    )
    save(
        "predict_heldout",
        {
            "machine": machine_info(),
            "loadavg": os.getloadavg(),
            "command": " ".join(sys.argv),
            "settings": {k: str(v) for k, v in vars(args).items()},
            "apps": {a.name: {"calibration": len(a.calibration), "fixed": len(a.fixed)} for a in apps},
            "learned": learned.meta,
            "summary": summary,
            "rows": levels,
            "wall_s": wall,
        },
    )


if __name__ == "__main__":
    main()
