"""``shoal predict``: fit GPU latency predictors on a measured table and evaluate them on another; fit the learned
application predictor on runs of the runtime (``fit-app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shoal.cli._app import cli
from shoal.cli._app import fail as _fail

if TYPE_CHECKING:
    from shoal.predict.app_learned import ObservedRun
    from shoal.predict.profile import Profile

predict_cli = typer.Typer(
    help=(
        "Predictors (docs/predictors.md). GPU latency: fit one on a table of columns model, batch, sm_percent, "
        "quota_percent, latency_ms (e.g. ../shared/gpu-profiles/rapp_v100_latency.csv, or your own measurements), "
        "then evaluate it on a table of models it has not seen. Applications: fit-app fits the learned predictor "
        "on runs kept by `shoal measure --runs-out`, for `shoal plan --learned`."
    ),
    no_args_is_help=True,
)
cli.add_typer(predict_cli, name="predict")


def _parse_refs(text: str) -> list[tuple[int, int, int]]:
    out = []
    for part in text.split(","):
        bits = part.strip().split(":")
        try:
            b, s, q = (int(x) for x in bits)
        except ValueError:
            raise ValueError(
                f"--refs: cannot read {part!r}; write BATCH:SM:QUOTA points, e.g. 1:100:100,4:10:100"
            ) from None
        out.append((b, s, q))
    return out


@predict_cli.command()
def fit(
    table: Annotated[
        Path, typer.Option(help="GPU latency table (CSV: model, batch, sm_percent, quota_percent, latency_ms).")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the fitted predictor (JSON).")],
    kind: Annotated[str, typer.Option(help="learned (gradient-boosted trees) | empirical (table interpolation)")] = (
        "learned"
    ),
    refs: Annotated[
        str | None,
        typer.Option(
            help="Reference points BATCH:SM:QUOTA a model is described by; the first at batch 1. "
            "Default: 1:100:100,4:100:100,4:10:100,1:100:20."
        ),
    ] = None,
    neighbours: Annotated[int, typer.Option(help="empirical: nearest measured models to interpolate over.")] = 3,
    seed: Annotated[int, typer.Option(help="learned: seed of the tree fitting.")] = 0,
) -> None:
    """Fit a GPU latency predictor on a table and save it as JSON (no pickle: the file is safe to share).

    \b
    Example:
      shoal predict fit --table ../shared/gpu-profiles/rapp_v100_latency.csv --out v100.json --kind learned
    """
    from shoal.predict.gpu_latency import DEFAULT_REFERENCES, EmpiricalGpuPredictor, save_predictor
    from shoal.predict.gpu_trees import LearnedGpuPredictor
    from shoal.predict.latency_table import LatencyTableError, read_latency_table

    if kind not in ("learned", "empirical"):
        _fail(f"--kind must be learned or empirical, got {kind!r}")
    try:
        points = _parse_refs(refs) if refs else list(DEFAULT_REFERENCES)
        t = read_latency_table(table)
        predictor = (
            LearnedGpuPredictor.fit(t, points, seed=seed)
            if kind == "learned"
            else EmpiricalGpuPredictor(t, points, neighbours)
        )
        save_predictor(predictor, out)
    except (LatencyTableError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"fitted an {kind} predictor on {len(t.models)} models ({len(t):,} rows) of {table}; wrote {out}")


@predict_cli.command("eval")
def evaluate_cmd(
    model: Annotated[Path, typer.Option(help="A predictor written by `shoal predict fit`.")],
    table: Annotated[
        Path, typer.Option(help="GPU latency table to score it on (each model's reference rows are its input).")
    ],
    output: Annotated[str, typer.Option(help="table | json")] = "table",
) -> None:
    """Score a predictor on a table: MAPE overall and per model.

    Each model's reference rows are given to the predictor and not scored; every other row is. Score on models the
    predictor was not fitted on to learn how it does on new models.
    """
    from shoal.predict.gpu_eval import evaluate
    from shoal.predict.gpu_latency import load_predictor
    from shoal.predict.latency_table import LatencyTableError, read_latency_table

    if output not in ("table", "json"):
        _fail(f"--output must be table or json, got {output!r}")
    try:
        predictor = load_predictor(model)
        result = evaluate(predictor, read_latency_table(table))
    except (LatencyTableError, ValueError) as e:
        _fail(str(e))
    if output == "json":
        typer.echo(json.dumps({"model": str(model), "table": str(table), **result.to_dict()}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{result.kind} predictor {model.name} on {table.name}: absolute % error of latency")
    for col in ("model", "rows", "MAPE %", "median %", "p90 %"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in result.per_model:
        t.add_row(m.model, str(m.rows), f"{m.mape:.1f}", f"{m.median_ape:.1f}", f"{m.p90_ape:.1f}")
    t.add_section()
    t.add_row("all", str(result.rows), f"{result.mape:.1f}", f"{result.median_ape:.1f}", f"{result.p90_ape:.1f}")
    Console().print(t)


@predict_cli.command("fit-app")
def fit_app(
    profile: Annotated[
        list[Path],
        typer.Option(
            help="The application's profile (`shoal profile`): the analytical base. Repeatable, one per application "
            "when the runs are of several."
        ),
    ],
    runs: Annotated[
        list[Path],
        typer.Option(help="Run files or folders of them (`shoal measure --runs-out DIR`); repeatable."),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the learned predictor (JSON, shoal.learned-app/1).")] = Path(
        "learned.json"
    ),
    window: Annotated[
        float | None,
        typer.Option(help="Also fit on each run's windows of this many seconds (the whole runs are always used)."),
    ] = None,
    app: Annotated[
        str | None,
        typer.Option(
            help="FILE.py[:VARIABLE] of the application, imported to parse the runs' plans (default: its graph as "
            "the profile recorded it, nothing imported)."
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Features of the trees, comma-separated; +NAME,... adds to the defaults (e.g. +scv, for runs "
            "that span burstiness: docs/predictors.md)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the tree fitting.")] = 0,
) -> None:
    """Fit the learned application predictor (the analytical model corrected by small boosted trees) on measured runs.

    Each run is predicted analytically from the profile; the trees learn the log ratio of measured to predicted p50,
    p95, p99 and cost per second, and the difference of SLO hit rates. Prints how many runs (and windows) it was
    fitted on and its in-sample error of p99 and cost against the analytical model's. Adaptive runs (the plan
    switched during the run) are skipped. The application's graph comes from its profile: no code a run file points
    at is imported (--app FILE.py imports one, by your choice). The file is JSON, never a pickle.

    \b
    Example:
      shoal profile examples/image_pipeline.py --out image-profile.json
      shoal measure examples/image_pipeline.py --rates 5,20,40 --runs-out runs/image
      shoal predict fit-app --profile image-profile.json --runs runs/image --window 10 --out image-learned.json
      shoal plan examples/image_pipeline.py --rate 30 --profile image-profile.json --learned image-learned.json
    """
    from shoal.predict.analytical import AnalyticalPredictor
    from shoal.predict.app_learned import DEFAULT_FEATURES, LearnedPredictor
    from shoal.predict.app_model import PredictError
    from shoal.predict.profile import ProfileError
    from shoal.predict.profile_io import read_profile

    if window is not None and not window > 0:
        _fail(f"--window must be > 0 seconds, got {window:g}")
    profiles: dict[str, Profile] = {}
    for path in profile:
        try:
            measured = read_profile(path)
        except ProfileError as e:
            _fail(f"cannot read profile {path}: {e}")
        if measured.app.name in profiles:
            _fail(f"two profiles of application {measured.app.name!r} given ({path}): give one per application")
        profiles[measured.app.name] = measured
    if app is not None and len(profiles) > 1:
        _fail("--app names one application: with several profiles, leave it out (each run's profile is found by name)")
    observed, skipped, unset = _observed_runs(profiles, runs, window, app)
    wholes = sum("@" not in o.source for o in observed)
    names = DEFAULT_FEATURES
    if features:
        given = tuple(x.strip().lstrip("+") for x in features.split(",") if x.strip().lstrip("+"))
        names = (*DEFAULT_FEATURES, *given) if features.strip().startswith("+") else given
    analytical = AnalyticalPredictor()
    try:
        learned = LearnedPredictor.fit(observed, analytical, features=names, seed=seed)
    except PredictError as e:
        _fail(str(e))
    learned.save(out)
    errs = _in_sample(learned, observed)
    windows = f" and {len(observed) - wholes} windows of {window:g} s" if window else ""
    note = f" ({skipped} adaptive runs skipped: their plan switched)" if skipped else ""
    fitted_on = ", ".join(sorted({o.plan.app.name for o in observed}))
    typer.echo(f"fitted on {wholes} runs{windows} of {fitted_on}{note}; wrote {out}")
    if unset:
        typer.echo(
            f"note: {unset} runs record no function settings ('config'): their plans were predicted with the "
            "defaults (FunctionConfig()); `shoal measure --runs-out` records them"
        )
    typer.echo("in-sample relative error, median / p90 (the runs it was fitted on; held-out error is larger):")
    for metric, label in (("p99", "p99"), ("cost", "cost/s")):
        none = (float("nan"), float("nan"))  # no run had the figure (all requests failed, or nothing cost)
        a, lrn = errs.get(f"analytical_{metric}", none), errs.get(f"learned_{metric}", none)
        typer.echo(
            f"  {label:7s} analytical {a[0] * 100:5.0f} % / {a[1] * 100:5.0f} %   "
            f"learned {lrn[0] * 100:5.0f} % / {lrn[1] * 100:5.0f} %"
        )


def _observed_runs(
    profiles: dict[str, Profile], paths: list[Path], window: float | None, app_ref: str | None
) -> tuple[list[ObservedRun], int, int]:
    """The run files as the fit's rows (whole runs, then windows if ``window``), how many adaptive runs were
    skipped and how many runs recorded no function settings. Fails, naming the file, on runs of another application
    than the profiles' or plans it cannot parse."""
    from shoal.app import SLO, AppError, Plan, PlanError, SpecError
    from shoal.app.loader import load_app
    from shoal.predict.app_learned import observed_runs
    from shoal.predict.app_model import PredictError
    from shoal.predict.profile import ProfileError
    from shoal.predict.run_files import read_run_files
    from shoal.runtime.replay import ReplayResult

    try:
        files = read_run_files(paths)
    except PredictError as e:
        _fail(str(e))
    fixed = [f for f in files if f.kind != "adaptive" and f.plan != "adaptive"]
    if not fixed:
        _fail(f"all {len(files)} runs given are adaptive (their plan switched): give runs of fixed plans")
    imported = None
    if app_ref is not None:  # the user's choice: import it
        try:
            imported = load_app(app_ref)
        except AppError as e:
            _fail(f"cannot load --app {app_ref!r}: {e}")
    graphs: dict[str, Any] = {}
    out: list[ObservedRun] = []
    for f in fixed:
        # which application ran: --app, else the name the run file records, else (older run files) the one profiled
        name = imported.name if imported is not None else f.app_name
        if name is None and len(profiles) == 1:
            name = next(iter(profiles))
        if name is None:
            _fail(
                f"{f.name} does not record its application's name (a run file from before stop 11) and several "
                "profiles were given: fit it with its own profile alone, or pass --app FILE.py[:VARIABLE]"
            )
        profile = profiles.get(name)
        if profile is None:
            _fail(
                f"{f.name} is a run of application {name!r}, the profile is of "
                f"{', '.join(repr(n) for n in profiles)}: give its profile too (--profile is repeatable), or leave "
                "the run out"
            )
        if imported is not None:
            application = imported
        else:
            try:
                application = graphs[name] if name in graphs else graphs.setdefault(name, profile.app.graph())
            except ProfileError as e:
                _fail(f"the profile of {name!r} does not describe a valid application: {e}")
        try:
            plan = Plan.parse(application, f.plan, default=f.function_config())
            slo = SLO.parse(f.slo)
        except (PlanError, SpecError, ValueError) as e:
            _fail(f"{f.name}: {e}")
        result = ReplayResult.from_dict(f.run)
        kw: dict[str, Any] = {"slo": slo, "input_mix": f.input_mix, "source": f.name}
        try:
            out += observed_runs(result, profile, plan, f.seconds, **kw)
            if window is not None:
                out += observed_runs(result, profile, plan, f.seconds, window_s=window, **kw)
        except PredictError as e:
            _fail(str(e))
    return out, len(files) - len(fixed), sum(f.config is None for f in fixed)


def _in_sample(learned: Any, runs: list[ObservedRun]) -> dict[str, tuple[float, float]]:
    """Median and 90th percentile of the relative error of p99 and cost per second on ``runs``, analytical and
    learned (runs whose figure is undefined, no successful request or no cost, left out)."""
    import math

    import numpy as np

    errs: dict[str, list[float]] = {}
    for r in runs:
        a = learned.analytical.predict(r.profile, r.plan, r.load, r.slo)
        for name, p in (("analytical", a), ("learned", learned.correct(r.plan, a))):
            for metric, pred, meas in (("p99", p.p99_s, r.p99_s), ("cost", p.cost_per_s, r.cost_per_s)):
                if math.isfinite(meas) and meas > 0:
                    errs.setdefault(f"{name}_{metric}", []).append(abs(pred / meas - 1.0))
    return {
        k: (float(np.percentile(v, 50, method="inverted_cdf")), float(np.percentile(v, 90, method="inverted_cdf")))
        for k, v in errs.items()
    }
