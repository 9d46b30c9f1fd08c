"""Held-out accuracy of the three application predictors on runs of the real runtime (issue 6, section 1).

The runs are those ``benchmarks/granularity.py`` keeps under ``results/granularity_runs/APP/*.json`` (run files,
read by ``shoal.predict.run_files``, as ``shoal predict fit-app`` reads them). Training splits (``--train``):

- **calibration**: the calibration runs (each plan under Poisson load at the app's three rates): what a deployment
  measures up front. The empirical predictor is its table of these runs (``ReplayResult.measurement``, as the
  experiment builds it); the learned predictor is fitted on those of all apps; the analytical predictor needs none,
  only each app's profile (``--profiles-from DIR``: ``DIR/profile_granularity_APP.json``, made by ``shoal profile``
  with every plan of the experiment).
- **repeat0**: the calibration runs plus repeat 0 of every fixed-plan run (steady, bursty, trace loads), whole and
  per window, so that the learned predictor sees bursty runs. The empirical predictor keeps the calibration table;
  "empirical, +repeat 0" is that table with the repeat-0 runs (whole) added.

**Test**: every fixed-plan run none of the split's predictors has seen, scored whole and per window of ``--window``
seconds (10 s); when any split given trains on repeat 0, every split is scored on repeats 1 and 2 only, so the
splits compare on the same runs (``--train calibration,repeat0`` prints them side by side).

Each predictor is given what a deployment would know of the load: the rate and the SCV of the inter-arrival gaps
(over the whole run, or the window) and the input mix the experiment sends (small, medium and large in turn). Per
predictor, overall, per app and per load pattern: median and 90th percentile of the relative error of p99 and of
resource cost per second, and of the absolute error of the SLO hit rate. "learned, +scv" is the learned predictor
with the arrivals' SCV as one more feature; "learned, other apps" is fitted on the other applications' runs only.
Writes ``results/predict_heldout.json``, ``results/predict_heldout.md`` (markdown tables ready for BENCHMARKS.md),
``results/predict_heldout.png`` (predicted against measured p99 and cost, whole runs, of the last split) and the
fitted learned predictors (``results/predict_heldout_learned.json``, ``..._learned_repeat0.json``).

    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/predict_heldout.py --profiles-from results
    flock /tmp/shoal-bench.lock .venv/bin/python benchmarks/predict_heldout.py --train calibration,repeat0
"""

from __future__ import annotations

import argparse
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
from shoal.predict.app_learned import DEFAULT_FEATURES, LearnedPredictor, ObservedRun, observed_runs
from shoal.predict.app_model import PredictError
from shoal.predict.measured import MeasuredError, MeasuredPredictor
from shoal.predict.profile import Profile
from shoal.predict.run_files import RunFile, read_run_files
from shoal.runtime.profiler.targets import load_target
from shoal.runtime.replay import ReplayResult

#: "learned, other apps": fitted on the training runs of the other applications only (how it does on an
#: application it has never seen a run of); scored when there are two applications or more. "empirical, +repeat 0":
#: the empirical table with the training split's repeat-0 fixed runs (whole) added to the calibration runs.
#: "learned, +scv": the learned predictor with the SCV of the arrivals among its features.
PREDICTORS = ("analytical", "empirical", "empirical, +repeat 0", "learned", "learned, +scv", "learned, other apps")
#: Training splits: "calibration", the Poisson calibration runs (what a deployment measures up front);
#: "repeat0", those plus repeat 0 of every fixed-plan run (steady, bursty, trace), whole and per window, so that the
#: learned predictor sees bursty runs. Where any split trains on repeat 0, every split is scored on the other repeats.
SPLITS = ("calibration", "repeat0")


@dataclass
class AppRuns:
    name: str
    app: shoal.App
    profile: Profile
    plans: dict[str, Plan]
    calibration: list[tuple[RunFile, ReplayResult]]
    fixed: list[tuple[RunFile, ReplayResult]]


def read_runs(runs_dir: Path, profiles_dir: Path) -> list[AppRuns]:
    """Every app with runs and a profile; an app without a profile is skipped with the command that makes one."""
    out = []
    for app_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        files: list[RunFile] = []
        for f in sorted(app_dir.glob("*.json")):
            try:
                files += read_run_files([f])
            except PredictError as e:  # the experiment may be writing it right now
                console.print(f"[yellow]{e}; skipped[/]")
        if not files:
            continue
        prof_path = profiles_dir / f"profile_granularity_{app_dir.name}.json"
        plans_used = sorted({f.plan for f in files if f.kind != "adaptive"})
        if not prof_path.exists():
            flags = " ".join(f"--plan {p}" for p in plans_used)
            console.print(
                f"[yellow]{app_dir.name}: no profile {prof_path}; skipped. Make it with: "
                f"flock /tmp/shoal-bench.lock .venv/bin/shoal profile {files[0].ref} {flags} --out {prof_path}[/]"
            )
            continue
        app = load_target(str(ROOT / files[0].ref)).app
        # granularity.py's files record no config: its plans all ran with fn_config()
        plans = {
            f.plan: Plan.parse(app, f.plan, default=f.function_config(fn_config()))
            for f in files
            if f.kind != "adaptive"
        }
        pairs = [(f, ReplayResult.from_dict(f.run)) for f in files]
        out.append(
            AppRuns(
                app_dir.name,
                app,
                read_profile(prof_path),
                plans,
                [(f, r) for f, r in pairs if f.kind == "calibrate"],
                [(f, r) for f, r in pairs if f.kind == "fixed"],
            )
        )
    return out


def observations(a: AppRuns, f: RunFile, res: ReplayResult, window_s: float | None) -> list[ObservedRun]:
    """The run whole (``window_s`` None) or its full windows; windows where nothing arrived are left out."""
    name = f"{a.name}/{f.kind}-{f.load}-{f.rate if f.rate is not None else ''}-{f.repeat}-{f.plan}"
    return observed_runs(
        res, a.profile, a.plans[f.plan], f.seconds, window_s=window_s, input_mix=f.input_mix, source=name
    )


def training_runs(apps: list[AppRuns], split: str, window_s: float) -> list[ObservedRun]:
    """The learned predictor's training runs of ``split`` (see ``SPLITS``)."""
    out = [o for a in apps for f, r in a.calibration for o in observations(a, f, r, None)]
    if split == "repeat0":
        for a in apps:
            for f, r in a.fixed:
                if f.repeat == 0:
                    out += observations(a, f, r, None) + observations(a, f, r, window_s)
    return out


def predict_all(
    run: ObservedRun,
    analytical: AnalyticalPredictor,
    learned: dict[str, LearnedPredictor],
    tables: dict[str, MeasuredPredictor],
) -> dict[str, dict[str, float] | None]:
    a = analytical.predict(run.profile, run.plan, run.load, run.slo)
    out: dict[str, dict[str, float] | None] = {
        "analytical": {"p99_s": a.p99_s, "cost_per_s": a.cost_per_s, "slo_hit": a.slo_hit_rate},
    }
    for name, table in tables.items():
        try:
            s = table.predict(run.plan.label, SimpleNamespace(rate=run.load.rate_rps, scv=run.load.scv))
            out[name] = {"p99_s": s.details["p99_ms"] / 1e3, "cost_per_s": s.cost_per_s, "slo_hit": s.slo_hit}
        except MeasuredError:
            out[name] = None  # a plan never calibrated: the empirical predictor refuses it
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


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else "inf" if math.isinf(v) else f"{v * 100:.0f} %"


def markdown(summary: dict[str, dict[str, dict[str, dict[str, float]]]], n_rows: dict[str, int]) -> str:
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
                    f"| {g} | {p} | {_pct(d['p99_median'])} / {_pct(d['p99_p90'])} | "
                    f"{_pct(d['cost_median'])} / {_pct(d['cost_p90'])} | "
                    f"{ab(d['slo_hit_median'])} / {ab(d['slo_hit_p90'])} |"
                )
        lines.append("")
    return "\n".join(lines)


def side_by_side(by_split: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]) -> str:
    """Overall and per load pattern, each predictor's p99 and cost errors under every split, in one table."""
    splits = list(by_split)
    head = " | ".join(f"p99 med / p90 ({s}) | cost med / p90 ({s})" for s in splits)
    lines = []
    for level in next(iter(by_split.values())):
        lines += [f"**{level}**", "", f"| group | predictor | {head} |", "|---|---|" + "---|" * (2 * len(splits))]
        group_names = [g for g in by_split[splits[0]][level] if g == "all" or g.startswith("load=")]
        for g in group_names:
            preds = list(dict.fromkeys(p for s in splits for p in by_split[s][level].get(g, {})))
            for p in preds:
                cells = []
                for s in splits:
                    d = by_split[s][level].get(g, {}).get(p)
                    cells += (
                        [
                            f"{_pct(d['p99_median'])} / {_pct(d['p99_p90'])}",
                            f"{_pct(d['cost_median'])} / {_pct(d['cost_p90'])}",
                        ]
                        if d
                        else ["(not in split)", "(not in split)"]
                    )
                lines.append(f"| {g} | {p} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, key, unit, scale in ((axes[0], "p99_s", "p99 (ms)", 1e3), (axes[1], "cost_per_s", "cost (USD/h)", 3600)):
        lo, hi = math.inf, 0.0
        for p, marker in zip(PREDICTORS, "osvD^P", strict=True):
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


def score_split(
    apps: list[AppRuns],
    split: str,
    analytical: AnalyticalPredictor,
    window_s: float,
    features: tuple[str, ...] | None,
    test: set[int],
) -> tuple[LearnedPredictor, list[ObservedRun], dict[str, list[dict[str, Any]]]]:
    """Fit on ``split``'s training runs, score every predictor on the fixed runs of the repeats in ``test``."""
    train = training_runs(apps, split, window_s)
    kw: dict[str, Any] = {} if features is None else {"features": features}
    try:
        learned = LearnedPredictor.fit(train, analytical, **kw)
    except PredictError as e:
        sys.exit(f"cannot fit the learned predictor ({split}): {e}")
    # the SCV as a feature: noise on Poisson calibration runs, information once bursty runs are in the training set
    with_scv = (*(features or DEFAULT_FEATURES), "scv")
    learned_scv = LearnedPredictor.fit(train, analytical, features=with_scv)
    learned_by_app = {
        a.name: {"learned": learned, "learned, +scv": learned_scv}
        | (
            {
                "learned, other apps": LearnedPredictor.fit(
                    [o for o in train if not o.source.startswith(f"{a.name}/")], analytical, **kw
                )
            }
            if len(apps) > 1
            else {}
        )
        for a in apps
    }
    tables: dict[str, dict[str, MeasuredPredictor]] = {}
    for a in apps:
        rows = [r.measurement(a.app.slo.latency_s, 0.0, f.seconds) for f, r in a.calibration]
        tables[a.name] = {"empirical": MeasuredPredictor(rows)}
        if split == "repeat0":
            extra = [r.measurement(a.app.slo.latency_s, 0.0, f.seconds) for f, r in a.fixed if f.repeat == 0]
            tables[a.name]["empirical, +repeat 0"] = MeasuredPredictor(rows + extra)
    levels: dict[str, list[dict[str, Any]]] = {"runs": [], "windows": []}
    for a in apps:
        for f, res in a.fixed:
            if f.repeat not in test:
                continue
            for level, window in (("runs", None), ("windows", window_s)):
                for run in observations(a, f, res, window):
                    preds = predict_all(run, analytical, learned_by_app[a.name], tables[a.name])
                    measured = {"p99_s": run.p99_s, "cost_per_s": run.cost_per_s, "slo_hit": run.slo_hit}
                    levels[level].append(
                        {
                            "app": a.name,
                            "load": f.load,
                            "repeat": f.repeat,
                            "plan": f.plan,
                            "source": run.source,
                            "rate_rps": run.load.rate_rps,
                            "scv": run.load.scv,
                            "measured": measured,
                            "predicted": preds,
                            "errors": {p: errors(v, run) for p, v in preds.items() if v is not None},
                        }
                    )
    return learned, train, levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=RESULTS / "granularity_runs", help="granularity.py's runs")
    ap.add_argument("--profiles-from", type=Path, default=RESULTS, help="folder of profile_granularity_APP.json")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per window of the per-window scores")
    ap.add_argument("--samples", type=int, default=20_000, help="the analytical predictor's samples per prediction")
    ap.add_argument(
        "--train",
        default="calibration",
        help=f"training splits, comma-separated, of {', '.join(SPLITS)}; with repeat0 every split is scored on "
        "repeats 1 and 2 only, side by side",
    )
    ap.add_argument(
        "--features", default=None, help="the learned predictor's features, comma-separated (default: its defaults)"
    )
    ap.add_argument(
        "--save",
        type=Path,
        default=RESULTS / "predict_heldout_learned.json",
        help="the learned model (of another split than calibration: _SPLIT before .json)",
    )
    args = ap.parse_args()
    splits = [x.strip() for x in args.train.split(",") if x.strip()]
    if not splits or any(x not in SPLITS for x in splits):
        sys.exit(f"--train takes splits of {', '.join(SPLITS)}, comma-separated; got {args.train!r}")
    features = tuple(x.strip() for x in args.features.split(",")) if args.features else None
    if not args.runs.is_dir():
        sys.exit(f"no runs at {args.runs}: run benchmarks/granularity.py first (it keeps its runs there)")
    apps = read_runs(args.runs, args.profiles_from)
    apps = [a for a in apps if a.calibration and a.fixed]
    if not apps:
        sys.exit(f"no app under {args.runs} has calibration runs, fixed runs and a profile: nothing to score")
    t0 = time.perf_counter()
    analytical = AnalyticalPredictor(samples=args.samples)
    repeats = {f.repeat for a in apps for f, _ in a.fixed}
    test = repeats - {0} if "repeat0" in splits else repeats
    results: dict[str, dict[str, Any]] = {}
    for split in splits:
        learned, train, levels = score_split(apps, split, analytical, args.window, features, test)
        save_to = args.save if split == "calibration" else args.save.with_name(f"{args.save.stem}_{split}.json")
        save_to.parent.mkdir(parents=True, exist_ok=True)
        learned.save(save_to)
        results[split] = {
            "train": len(train),
            "learned": learned.meta | {"features": learned.feature_names},
            "levels": levels,
            "summary": {level: groups(rows) for level, rows in levels.items() if rows},
        }
    wall = time.perf_counter() - t0
    md = []
    if len(splits) > 1:
        md += [
            f"Side by side (held-out: fixed runs of repeats {sorted(test)}):",
            "",
            side_by_side({s: r["summary"] for s, r in results.items()}),
        ]
    for split, r in results.items():
        md += [
            f"### trained on: {split} ({r['train']} training runs and windows; "
            f"features {', '.join(r['learned']['features'])})",
            "",
            markdown(r["summary"], {k: len(v) for k, v in r["levels"].items()}),
        ]
    text = "\n".join(md)
    (RESULTS / "predict_heldout.md").write_text(text + "\n")
    plot(results[splits[-1]]["levels"]["runs"], RESULTS / "predict_heldout.png")
    console.print(text)
    for split, r in results.items():
        console.print(
            f"{split}: {r['train']} training runs/windows, {len(r['levels']['runs'])} held-out runs, "
            f"{len(r['levels']['windows'])} windows"
        )
    console.print(f"all {wall:.1f} s; load average {os.getloadavg()}")
    save(
        "predict_heldout",
        {
            "machine": machine_info(),
            "loadavg": os.getloadavg(),
            "command": " ".join(sys.argv),
            "settings": {k: str(v) for k, v in vars(args).items()},
            "apps": {a.name: {"calibration": len(a.calibration), "fixed": len(a.fixed)} for a in apps},
            "test_repeats": sorted(test),
            "splits": results,
            "wall_s": wall,
        },
    )


if __name__ == "__main__":
    main()
