"""``shoal measure`` and ``shoal plan``: measure plans under load, then choose the cheapest plan that meets the SLO."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shoal.cli._app import cli
from shoal.cli._app import fail as _fail
from shoal.cli._scoring import analytical_score, parse_input_mix

if TYPE_CHECKING:
    import numpy as np

    from shoal.app import FunctionConfig


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        _fail(f"{what} takes comma-separated numbers, such as 5,20,40; got {text!r}")
    if not values or any(v <= 0 for v in values):
        _fail(f"{what} needs numbers > 0; got {text!r}")
    return values


@cli.command()
def measure(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    plan: Annotated[list[str] | None, typer.Option(help="Plan to measure; repeatable. Default: fine, coarse.")] = None,
    rates: Annotated[str, typer.Option(help="Poisson arrival rates to measure at, req/s, comma-separated.")] = "5,20",
    seconds: Annotated[float, typer.Option(help="Seconds of load per plan and rate.")] = 20.0,
    slo: Annotated[str | None, typer.Option(help="SLO to score against (default: the app's), e.g. p99:200ms.")] = None,
    keep_alive: Annotated[float, typer.Option(help="Seconds an idle instance stays warm.")] = 10.0,
    out: Annotated[Path, typer.Option(help="Where to write the table (JSON, schema shoal.measured/1).")] = Path(
        "measured.json"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the arrivals (repeats: this seed, the next, ...).")] = 0,
    repeats: Annotated[
        int,
        typer.Option(
            help="Measure every plan and rate this many times on other seeds; the table takes the mean. A plan at "
            "its autoscaler's threshold runs on one instance or two by chance, and one run prices it at one of them."
        ),
    ] = 1,
    settle: Annotated[
        float,
        typer.Option(
            help="Serve each load this many seconds before the measured --seconds, so the start (scale-out from "
            "one warm instance) is left out of the row. 0: measure from the first request."
        ),
    ] = 0.0,
    runs_out: Annotated[
        Path | None,
        typer.Option(help="Also keep every run whole in this folder (JSON), for `shoal predict fit-app --runs`."),
    ] = None,
    bursty_cycle: Annotated[
        float,
        typer.Option(
            help="Also measure each rate as bursty load: bursts at --bursty-peak times the quiet rate, quiet + "
            "burst this many seconds on average. 0: Poisson only."
        ),
    ] = 0.0,
    bursty_peak: Annotated[
        float,
        typer.Option(
            help="How sharp the measured bursts are: the burst rate over the quiet rate (4: SCV 2). Match the "
            "bursts your service sees; `shoal load --plot` shows them."
        ),
    ] = 4.0,
    bursty_share: Annotated[
        float,
        typer.Option(
            help="How much of each cycle the measured bursts last, between 0 and 1 (a third: quiet phases twice "
            "as long as bursts)."
        ),
    ] = 1.0 / 3.0,
    bursty_like: Annotated[
        str | None,
        typer.Option(
            help="Measure bursts shaped like this traffic: a trace CSV or generator spec as `shoal load --trace` "
            "takes it, at the time scale your service sees it. Its bursts' peak, cycle and share are fitted "
            "(printed) and used as --bursty-peak, --bursty-cycle and --bursty-share. An hour of traffic holding "
            "tens of bursts pins the peak within ~5 %, the cycle within ~20 % and the share within ~0.07."
        ),
    ] = None,
) -> None:
    """Measure plans of an application under open-loop Poisson load on this machine, for `shoal plan --measured`.

    Each plan runs at each rate on the embedded runtime; every run gives its SLO hit rate, resource cost per second
    and p99 (a row of the empirical predictor's table, docs/granularity.md). With --bursty-cycle each rate is also
    measured as the mean of bursty load, so that the table prices what bursts cost a plan (scale-outs, cold starts,
    queueing at each onset), for `shoal serve --adaptive-horizon-as load`; keep the cycle a few times shorter than
    --seconds. --repeats and --settle make the rows steadier (see their help; docs/granularity.md, "Calibrating the
    table"). With --runs-out each run is also kept whole (every request's arrival, latency and status; instances
    and cost over time) as one JSON file, from which `shoal predict fit-app` fits the learned predictor.

    \b
    Example:
      shoal measure examples/image_pipeline.py --plan fine --plan coarse --rates 5,20,40 --seconds 20
      shoal measure examples/image_pipeline.py --rates 5,20 --seconds 60 --bursty-cycle 15   # Poisson and bursty
      shoal measure examples/image_pipeline.py --rates 5,20 --seconds 60 --bursty-cycle 25 --bursty-peak 8 \\
          --bursty-share 0.4
      shoal measure examples/image_pipeline.py --rates 5,20 --seconds 60 --bursty-like yesterday.csv
      shoal measure examples/image_pipeline.py --rates 5,20,40 --runs-out runs/image   # then: shoal predict fit-app
      shoal measure examples/image_pipeline.py --rates 5,20 --seconds 90 --settle 30 --repeats 2   # steadier rows
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shoal.app import SLO, AppError, FunctionConfig, Plan, PlanError, SpecError
    from shoal.policy.arrivals import BURST_SCALE_S
    from shoal.predict.measured import MeasuredPredictor
    from shoal.runtime.host import HostConfig
    from shoal.runtime.local import local
    from shoal.runtime.profiler.options import ProfilerError
    from shoal.runtime.profiler.targets import load_target
    from shoal.runtime.replay import replay
    from shoal.workload.generators import bursts, bursts_index, bursts_scv, poisson

    levels = _floats(rates, "--rates")
    if repeats < 1:
        _fail(f"--repeats must be 1 or more (runs per plan and rate), got {repeats}")
    if not (settle >= 0 and math.isfinite(settle)):
        _fail(f"--settle must be 0 or a number of seconds > 0, got {settle:g}")
    if bursty_like is not None:
        if bursty_cycle:
            _fail("give --bursty-like (fit the bursts' shape to traffic) or --bursty-cycle (state it), not both")
        bursty_peak, bursty_cycle, bursty_share = _fitted_bursts(bursty_like, seed)
    if not (bursty_cycle >= 0 and math.isfinite(bursty_cycle)):
        _fail(f"--bursty-cycle must be 0 (off) or a number of seconds > 0, got {bursty_cycle:g}")
    if not (bursty_peak >= 1 and math.isfinite(bursty_peak)):
        _fail(f"--bursty-peak must be a number >= 1 (the burst rate over the quiet rate), got {bursty_peak:g}")
    if not 0 < bursty_share < 1:
        _fail(f"--bursty-share must be between 0 and 1 (the bursts' part of each cycle), got {bursty_share:g}")
    # each kind of load: how to draw it, and the SCV and burst index of its process (a row's burstiness class: a
    # sample of a few burst cycles scatters too widely around them for rows at several rates to share a class)
    span = settle + seconds
    arrivals: dict[str, tuple[Callable[[float, int], np.ndarray], float, float]] = {
        "poisson": (lambda r, s: poisson(r, span, seed=s), 1.0, 0.0)
    }
    if bursty_cycle > 0:
        arrivals["bursty"] = (
            lambda r, s: bursts(r, span, bursty_cycle, peak=bursty_peak, seed=s, share=bursty_share),
            bursts_scv(bursty_peak, bursty_share),
            bursts_index(bursty_peak, bursty_cycle, BURST_SCALE_S, bursty_share),
        )
    try:
        target = load_target(app)
        application = target.app
        objective = SLO.parse(slo) if slo else application.slo
        cfg = FunctionConfig(keep_alive_s=keep_alive)
        plans = [Plan.parse(application, p, default=cfg) for p in (plan or ["fine", "coarse"])]
    except (AppError, PlanError, SpecError, ProfilerError, ValueError) as e:
        _fail(str(e))
    if target.inputs is None:
        _fail(f"{app}: no inputs to send; define profile_inputs(size) in the app file (docs/profiles.md)")
    inputs = [target.inputs(size) for size in ("small", "medium", "large")]
    rows = []
    costs: dict[tuple[str, str, float], list[float]] = {}  # per plan, load and rate: each repeat's cost
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("measuring", total=repeats * len(plans) * len(levels) * len(arrivals))
        seeds = range(seed, seed + repeats)  # a repeat whole before the next
        for run_seed, p, (kind, (draw, scv, burst)), rate in itertools.product(seeds, plans, arrivals.items(), levels):
            again = f", repeat {run_seed - seed + 1} of {repeats}" if repeats > 1 else ""
            progress.update(task, description=f"{p.label} at {rate:g} req/s ({kind}{again})")
            times = draw(rate, run_seed)
            stable = min(60.0, max(2.0, seconds / 2))  # scaling settles within a run of a few tens of seconds
            config = HostConfig(stable_window_s=stable, panic_window_s=min(6.0, stable / 2))
            with local(application, p, config) as svc:
                svc.invoke(inputs[0])  # one warm instance per function before the clock starts
                res = svc._run(
                    replay(svc.host, application.name, times, lambda i: inputs[i % len(inputs)]),
                    timeout=span * 10 + 120,
                )
            row = dataclasses.replace(res.measurement(objective.latency_s, settle, span), scv=scv, burst=burst)
            rows.append(row)
            costs.setdefault((p.label, kind, rate), []).append(row.cost_per_s)
            if runs_out is not None:
                doc = res.to_dict()
                _keep_run(
                    runs_out, app, application.name, p.label, str(objective), span, doc, rate, run_seed, cfg, kind
                )
            progress.advance(task)
            console.print(
                f"{p.label:30s} {rate:6.1f} req/s {kind:7s}  SLO hit {row.slo_hit:.3f}  "
                f"p99 {row.p99_ms:8.1f} ms  cost {row.cost_per_s * 3600:.4f} USD/h"
            )
    MeasuredPredictor(rows, slo=str(objective), burst_scale_s=BURST_SCALE_S).save(out)
    kept = f"; kept every run in {runs_out}/" if runs_out is not None else ""
    typer.echo(f"wrote {out} ({len(rows)} runs, SLO {objective}){kept}")
    for note in spread_notes(costs):
        typer.echo(note)


SPREAD_WARN = 0.10  # repeats' costs further apart than this (max/min - 1) are said, with what to do


def spread_notes(costs: dict[tuple[str, str, float], list[float]]) -> list[str]:
    """What to say of the repeats of each point (plan, load, rate) whose costs lie over ``SPREAD_WARN`` apart: the
    table holds their mean, which the user should know is uncertain there, and how to make it less so."""
    wide = [(k, v) for k, v in costs.items() if min(v) > 0 and max(v) / min(v) - 1 > SPREAD_WARN]
    notes = [
        f"{label} at {rate:g} req/s ({kind}): cost {min(v) * 3600:.4f}-{max(v) * 3600:.4f} USD/h over {len(v)} "
        f"repeats ({max(v) / min(v) - 1:+.0%}); the table holds their mean"
        for (label, kind, rate), v in wide
    ]
    if notes:
        notes.append(
            "where repeats disagree, the plan is near a scaling step (one instance more or less by chance): more "
            "--repeats or longer --seconds give a steadier mean"
        )
    return notes


def _fitted_bursts(spec: str, seed: int) -> tuple[float, float, float]:
    """The peak, cycle and share of the ``bursts`` shape that fits the traffic ``spec`` names, said aloud."""
    from shoal.policy.arrivals import BURST_SCALE_S, burst_curve, credible_burst, observe_load
    from shoal.workload.generators import bursts_index, fit_bursts
    from shoal.workload.source import prepare
    from shoal.workload.traces import TraceError

    try:
        trace = prepare(spec, seed=seed)
    except (TraceError, ValueError) as e:
        _fail(f"--bursty-like: {e}")
    curve = burst_curve(trace.times, trace.span_s)
    if not curve:
        _fail(
            f"--bursty-like {spec}: {len(trace)} arrivals over {trace.span_s:g} s are too few to read bursts from; "
            "give longer or busier traffic (ten bins of a second or more, an arrival per bin)"
        )
    shape = fit_bursts(trace.times, trace.span_s, ((x.scale_s, x.index, x.noise, x.bins) for x in curve))
    if shape is None:
        _fail(
            f"--bursty-like {spec}: no bursts in this traffic (its burst index is within Poisson noise at every "
            f"scale from {curve[0].scale_s:g} to {curve[-1].scale_s:g} s); measure Poisson load only"
        )
    fits = "fits well" if shape.misfit <= 2.0 else "the nearest shape; this traffic is not shaped like bursts"
    own = credible_burst(observe_load(trace.times, trace.span_s, trace.span_s, BURST_SCALE_S))
    index = bursts_index(shape.peak, shape.cycle_s, BURST_SCALE_S, shape.share)
    typer.echo(
        f"bursts in {spec}: {shape.peak:.2f}x the quiet rate, {shape.share:.0%} of {shape.cycle_s:.1f}-s cycles "
        f"(burst index at {BURST_SCALE_S:g} s: {index:.3f}; misfit "
        f"{shape.misfit:.2f}, {fits}). The traffic's own mean rate and burst index at {BURST_SCALE_S:g} s: "
        f"{len(trace) / trace.span_s:.2f} req/s, {own:.3f} (for `shoal serve --adaptive-expect-rate "
        f"--adaptive-expect-burst`)",
        err=True,
    )
    return shape.peak, shape.cycle_s, shape.share


def _keep_run(
    folder: Path,
    ref: str,
    app_name: str,
    plan: str,
    slo: str,
    seconds: float,
    run: dict[str, Any],
    rate: float,
    seed: int,
    cfg: FunctionConfig,
    load: str = "poisson",
) -> Path:
    """One run as a run file (``shoal.predict.run_files``: the layout benchmarks/granularity.py keeps its runs in)."""
    from shoal.predict.run_files import EVEN_MIX, run_file_doc

    kw: dict[str, Any] = {"load": load, "rate": rate, "repeat": seed, "config": cfg, "input_mix": EVEN_MIX}
    doc = run_file_doc(ref, plan, slo, seconds, run, app_name=app_name, **kw)
    slug = plan.replace(",", "_").replace("+", "-").replace(" ", "")
    path = folder / f"measure-{load}-{rate:g}-{seed}-{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@cli.command(name="plan")
def plan_command(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    rate: Annotated[float, typer.Option(help="Arrival rate to plan for, req/s.")] = 10.0,
    scv: Annotated[float, typer.Option(help="Burstiness: squared CV of inter-arrival gaps (1: Poisson).")] = 1.0,
    burst: Annotated[
        float | None,
        typer.Option(
            help="--measured: burstiness as the burst index (0: Poisson; `shoal measure --bursty-like` prints your "
            "traffic's), priced by the table's bursty rows instead of --scv."
        ),
    ] = None,
    slo: Annotated[str | None, typer.Option(help="SLO, e.g. p99:200ms (default: the app's).")] = None,
    target: Annotated[float, typer.Option(help="SLO hit rate a plan must reach.")] = 0.99,
    measured: Annotated[
        Path | None, typer.Option(help="A `shoal measure` table: the empirical predictor scores its plans.")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="A `shoal profile` JSON: the analytical predictor scores every plan.")
    ] = None,
    learned: Annotated[
        Path | None,
        typer.Option(help="A `shoal predict fit-app` file: with --profile, the learned predictor scores every plan."),
    ] = None,
    input_mix: Annotated[
        str | None,
        typer.Option(
            help="--profile: fractions of requests per profiled input size, e.g. small=1,medium=1,large=1 (what "
            "`shoal measure` sends; default: all medium)."
        ),
    ] = None,
    vcpus: Annotated[str | None, typer.Option(help="vCPU shares to weigh per function (analytical), e.g. 1,2.")] = None,
    batches: Annotated[str, typer.Option(help="Batch sizes to weigh for batchable functions, e.g. 1,4,8.")] = "1",
    top: Annotated[int, typer.Option(help="How many candidates to show.")] = 12,
    output: Annotated[str, typer.Option(help="table | json")] = "table",
) -> None:
    """Choose the cheapest plan whose predicted SLO hit rate meets the target at a load, and show the others.

    Three predictors: --measured (the empirical one: only the plans measured), --profile (the analytical one:
    every plan), --profile with --learned (the analytical one corrected from measured runs: every plan).

    \b
    Example:
      shoal measure examples/image_pipeline.py --rates 5,20,40 --out image.json
      shoal plan examples/image_pipeline.py --rate 30 --measured image.json
      shoal plan examples/image_pipeline.py --rate 30 --scv 4 --profile image-profile.json
      shoal plan examples/image_pipeline.py --rate 12 --burst 0.2 --measured bursty.json   # measure --bursty-like
      shoal plan examples/image_pipeline.py --rate 30 --profile image-profile.json --learned image-learned.json
    """
    from types import SimpleNamespace

    from shoal.app import SLO, AppError, SpecError
    from shoal.app.loader import load_app
    from shoal.predict.measured import MeasuredError, MeasuredPredictor
    from shoal.predict.planner import Planner

    if output not in ("table", "json"):
        _fail(f"--output must be table or json, got {output!r}")
    if not rate > 0 or not scv > 0:
        _fail("--rate and --scv must be > 0")
    try:
        application = load_app(app)
        objective = SLO.parse(slo) if slo else application.slo
    except (AppError, SpecError, ValueError) as e:
        _fail(str(e))
    if (measured is None) == (profile is None):
        _fail(
            "give one predictor: --profile PROFILE.json (analytical, from `shoal profile`; add --learned FILE.json "
            "from `shoal predict fit-app` to correct it) or --measured TABLE.json"
        )
    if input_mix is not None and profile is None:
        _fail("--input-mix is for --profile (the analytical or learned predictor); a measured table has its own mix")
    if learned is not None and profile is None:
        _fail("--learned corrects the analytical predictor: give the application's --profile PROFILE.json too")
    vcpu_options: list[float | None] = [None] if vcpus is None else list(_floats(vcpus, "--vcpus"))
    batch_options = [int(b) for b in _floats(batches, "--batches")]
    if measured is not None:
        try:
            table = MeasuredPredictor.load(measured)
        except MeasuredError as e:
            _fail(str(e))
        if table.slo is not None and table.slo != str(objective):
            _fail(f"{measured} was scored against {table.slo}, not {objective}; measure again with --slo {objective}")
        score, source = table.predict, f"measured plans: {', '.join(table.plans)}"
        if burst is not None and not (burst >= 0 and math.isfinite(burst)):
            _fail(f"--burst takes a burst index >= 0 (0: Poisson), got {burst:g}")
        if burst is not None and not any((r.burst or 0.0) > 0 for r in table.rows):
            _fail(
                f"--burst prices a load by a table's bursty rows, and {measured} has none: measure with `shoal "
                "measure --bursty-like TRAFFIC` (or --bursty-cycle)"
            )
    else:
        if burst is not None:
            _fail("--burst prices a load by a measured table's bursty rows: give --measured TABLE.json")
        assert profile is not None
        score, source = analytical_score(profile, objective, learned, parse_input_mix(input_mix)), f"profile {profile}"
    planner = Planner(application, score, slo_target=target, vcpu_options=vcpu_options, batch_options=batch_options)
    load = SimpleNamespace(rate=rate, scv=scv)
    if burst is not None:  # a stated index, priced as given (MeasuredPredictor)
        load = SimpleNamespace(rate=rate, scv=scv, burst=burst, burst_scale_s=table.burst_scale_s)
    choices = planner.search(load)
    if not choices:
        _fail(f"the predictor could score none of the plans ({source})")
    best = choices[0]
    meets = best.score.slo_hit >= target
    why = (
        f"the cheapest of the {sum(c.score.slo_hit >= target for c in choices)} plans predicted to meet "
        f"{target:.3g} of requests within {objective}"
        if meets
        else f"no plan is predicted to meet {target:.3g} within {objective}: the highest predicted SLO hit rate"
    )
    doc: dict[str, Any] = {
        "app": application.name,
        "load": {"rate": rate, "scv": scv, "burst": burst, "input_mix": input_mix},
        "slo": str(objective),
        "target": target,
        "chosen": best.label,
        "why": why,
        "candidates": [
            {
                "plan": c.label,
                "slo_hit": c.score.slo_hit,
                "cost_usd_per_h": c.score.cost_per_s * 3600,
                **c.score.details,
            }
            for c in choices
        ],
        "not_scored": planner.skipped,
    }
    if output == "json":
        typer.echo(json.dumps(doc))
        return
    from rich.console import Console
    from rich.table import Table

    bursty = f"SCV {scv:g}" if burst is None else f"burst index {burst:g}"
    grid = Table(title=f"{application.name} at {rate:g} req/s ({bursty}), SLO {objective}, target {target:g}")
    for col in ("plan", "SLO hit", "cost USD/h", "p99 ms", ""):
        grid.add_column(col)
    for c in choices[:top]:
        mark = "chosen" if c is best else ("meets" if c.score.slo_hit >= target else "misses")
        p99 = c.score.details.get("p99_ms")
        grid.add_row(
            c.label, f"{c.score.slo_hit:.3f}", f"{c.score.cost_per_s * 3600:.4f}", f"{p99:.1f}" if p99 else "-", mark
        )
    console = Console()
    console.print(grid)
    console.print(f"chosen: [bold]{best.label}[/], {why}")
    if planner.skipped:
        console.print(
            f"[dim]{len(planner.skipped)} plans not scored ({source}): measure or profile them to weigh them[/]"
        )
