"""``shoal serve``, ``status``, ``invoke`` and ``demo``: the embedded runtime over HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shoal.app import App, AppError, FunctionConfig, Plan, PlanError, SpecError
from shoal.cli._app import cli
from shoal.cli._app import fail as _fail
from shoal.cli._scoring import analytical_score, parse_input_mix

if TYPE_CHECKING:
    from shoal.runtime.host import Host


@cli.command()
def serve(
    app: Annotated[str, typer.Argument(help="The application: FILE.py, or FILE.py:VARIABLE if it defines several.")],
    plan: Annotated[str, typer.Option(help="fine | coarse | groups like 'a+b,c' (stages joined by +, groups by ,)")] = (
        "coarse"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    bind: Annotated[str, typer.Option("--host", help="Address to bind. Beyond 127.0.0.1 a token is required.")] = (
        "127.0.0.1"
    ),
    token: Annotated[
        str | None, typer.Option(help="Bearer token for /status and /metrics (made if bound wide).")
    ] = None,
    keep_alive: Annotated[float, typer.Option(help="Seconds an idle instance stays warm.")] = 60.0,
    target_concurrency: Annotated[
        float | None,
        typer.Option(help="In-flight requests per instance the autoscaler aims for (default 70% of what one holds)."),
    ] = None,
    min_instances: Annotated[int, typer.Option(help="Warm instances kept per function, even when idle.")] = 0,
    max_instances: Annotated[int, typer.Option(help="Most instances per function.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds a function may run per request before 504.")] = 30.0,
    queue_limit: Annotated[int, typer.Option(help="Requests that may wait per function before 429.")] = 256,
    max_batch_size: Annotated[
        int, typer.Option(help="Dynamic batching: most requests per call of a batch=True stage (1: off).")
    ] = 1,
    max_batch_wait_ms: Annotated[
        float, typer.Option(help="Dynamic batching: most time a request waits for its batch to fill.")
    ] = 0.0,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, in MiB, before 413.")] = 64.0,
    cpu_overcommit: Annotated[
        float, typer.Option(help="Scale out only while allocated vCPU <= cores x this (first instances always start).")
    ] = 1.0,
    adaptive: Annotated[
        Path | None,
        typer.Option(
            help="Adapt the plan to the load: a `shoal measure` table whose plans the controller chooses among."
        ),
    ] = None,
    adaptive_profile: Annotated[
        Path | None,
        typer.Option(
            help="Adapt the plan to the load from a `shoal profile` JSON instead of a table: the analytical predictor "
            "scores every grouping of the app, so the controller chooses among all of them."
        ),
    ] = None,
    adaptive_learned: Annotated[
        Path | None,
        typer.Option(
            help="With --adaptive-profile: a `shoal predict fit-app` file whose trees correct the analytical "
            "predictor (the learned predictor)."
        ),
    ] = None,
    adaptive_input_mix: Annotated[
        str | None,
        typer.Option(
            help="With --adaptive-profile: fractions of requests per profiled input size, e.g. "
            "small=1,medium=1,large=1 (default: all medium)."
        ),
    ] = None,
    adaptive_window: Annotated[float, typer.Option(help="Adaptive: seconds per load window.")] = 10.0,
    adaptive_dwell: Annotated[float, typer.Option(help="Adaptive: least seconds between two switches.")] = 60.0,
    adaptive_horizon: Annotated[
        float,
        typer.Option(help="Adaptive: weigh plans over the loads of this many seconds (the window's alone: 0)."),
    ] = 0.0,
    adaptive_horizon_as: Annotated[
        str,
        typer.Option(
            help="Adaptive: mix (each window's load priced, then averaged) | load (the horizon's arrivals priced as "
            "one load: with a table measured --bursty-cycle, what bursts cost)."
        ),
    ] = "mix",
    adaptive_emergency: Annotated[
        float,
        typer.Option(
            help="Adaptive: also check every this many seconds between windows for an SLO emergency alone, so that "
            "a burst is answered seconds after it starts (0: at windows only)."
        ),
    ] = 0.0,
    adaptive_expect_burst: Annotated[
        float | None,
        typer.Option(
            help="Adaptive, with --adaptive-horizon-as load: the burst index your traffic has (`shoal measure "
            "--bursty-like` prints it), assumed until a whole horizon has been seen, so that the first burst meets "
            "a plan chosen for bursts."
        ),
    ] = None,
    adaptive_expect_rate: Annotated[
        float | None,
        typer.Option(
            help="Adaptive, with --adaptive-horizon-as load: the mean rate (req/s) your traffic has, assumed until a "
            "whole horizon has been seen, so that the quiet before the first burst is not taken for the load."
        ),
    ] = None,
    adaptive_forecast: Annotated[
        float,
        typer.Option(
            help="Adaptive: look this many seconds back for bursts that repeat (a cron job, a periodic upload); "
            "while a period of at least 3 repeats stands out, plan each window from a schedule over the forecast "
            "period, so the burst plan is warm when a burst begins and the cheap plan serves between bursts (0: off)."
        ),
    ] = 0.0,
    adaptive_history: Annotated[
        Path | None,
        typer.Option(
            help="Adaptive: keep the arrivals of the look-back (--adaptive-forecast, --adaptive-horizon) in this "
            "file, written every window, and start from it: a restarted server forecasts from the traffic it "
            "served before instead of waiting three periods, and its horizon reads that traffic at once; the time "
            "it was down is left out. With --adaptive-meter or --adaptive-explore, also what each plan cost and "
            "served, so that a restart prices plans by the meter at once and does not repeat a trial."
        ),
    ] = None,
    adaptive_meter: Annotated[
        bool,
        typer.Option(
            help="Adaptive: price each plan by what it cost where it served (metered against the table's price), "
            "and try a plan the table puts within 5 % of what the current one is metered to cost, keeping the "
            "cheaper by the meter: a table's error can exceed the 10 % the controller needs to move."
        ),
    ] = False,
    adaptive_explore: Annotated[
        bool,
        typer.Option(
            help="Adaptive, with the meter: also correct each plan's SLO hit rate by what it served within the SLO, "
            "and try a plan the table calls up to 3 points short of the target at 10 % less cost, within an error "
            "budget: only after the current plan has left 3 misses unspent, back as soon as the plan tried has "
            "missed 3 more than the target allows (a table of short runs can call a plan short that is not). "
            "Experimental, for loads that hold: what a plan served counts only while the load holds and is not "
            "bursty (before that rule it lost 2 points of SLO hit in simulated GPU scenarios under bursts, "
            "BENCHMARKS.md §13p-§13q)."
        ),
    ] = False,
    slo_target: Annotated[float, typer.Option(help="Adaptive: SLO hit rate a plan must reach.")] = 0.99,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "warning",
) -> None:
    """Serve an application over HTTP: POST /apps/APP/invoke, GET /status, GET /metrics.

    With --adaptive TABLE.json the plan follows the load: every window the planner scores the measured plans at the
    observed load and the controller switches live when it pays (docs/granularity.md). With --adaptive-horizon 120
    it weighs each plan over the loads of the last two minutes instead, so bursts that come and go do not make it
    chase them; an SLO emergency at the window's load is still answered at once. With --adaptive-horizon-as load
    the two minutes' arrivals are priced as one load, rate and burstiness: from a table measured with
    `shoal measure --bursty-cycle`, that prices what bursts cost each plan. With --adaptive-emergency 2 it also
    looks every 2 s between windows for an SLO emergency, and answers one at once. With --adaptive-expect-rate 12
    --adaptive-expect-burst 0.2 the horizon is priced at that rate and that bursty from the start, fading to the
    traffic seen over the first horizon (`shoal measure --bursty-like` prints both for your traffic). With
    --adaptive-profile PROFILE.json instead of a table, the analytical predictor scores every grouping of the app
    from its profile (add --adaptive-learned FILE.json to correct it with the learned predictor's trees). With
    --adaptive-forecast 900 it looks 15 minutes back for bursts whose onsets repeat and, while it finds a period,
    switches a warm-up ahead of each burst and back after it; add --adaptive-history arrivals.npy so that a restart
    keeps the look-back (the time it was down is left out of its readings, not read as quiet). With
    --adaptive-meter each plan is priced by what it cost while it served, and a plan the table calls nearly as
    cheap is tried and kept if the meter agrees; add --adaptive-explore to do the same for the SLO hit rate.

    \b
    Example:
      shoal serve examples/image_pipeline.py --plan fine --port 8000
      python -c "import numpy as np; np.save('img.npy', np.zeros((64, 64, 3), np.uint8))"
      curl -s --data-binary @img.npy -H 'content-type: application/x-npy' localhost:8000/apps/image/invoke
      shoal status
    """
    from shoal.app.loader import load_app
    from shoal.runtime.host import HostConfig
    from shoal.runtime.server import serve as run_server

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        the_app = load_app(app)
        default = FunctionConfig(
            min_instances=min_instances,
            max_instances=max_instances,
            keep_alive_s=keep_alive,
            target_concurrency=target_concurrency,
            timeout_s=timeout,
            queue_limit=queue_limit,
            max_batch_size=max_batch_size,
            max_batch_wait_s=max_batch_wait_ms / 1e3,
        )
        the_plan = Plan.parse(the_app, plan, default=default)
    except (AppError, PlanError, SpecError) as e:
        _fail(str(e))
    if not max_body_mb > 0:
        _fail(f"--max-body-mb must be positive, got {max_body_mb:g}")
    config = HostConfig(max_body_bytes=int(max_body_mb * (1 << 20)), cpu_overcommit=cpu_overcommit)
    on_start = None
    if adaptive is not None and adaptive_profile is not None:
        _fail("give one of --adaptive TABLE.json (measured plans) and --adaptive-profile PROFILE.json (every plan)")
    if adaptive_learned is not None and adaptive_profile is None:
        _fail("--adaptive-learned corrects the analytical predictor: give the app's --adaptive-profile PROFILE.json")
    if adaptive_input_mix is not None and adaptive_profile is None:
        _fail("--adaptive-input-mix is for --adaptive-profile; a measured table has its own mix")
    if adaptive is not None or adaptive_profile is not None:
        if adaptive is not None:
            score = _table_score(adaptive, the_app, the_plan, adaptive_horizon_as)
        else:
            if adaptive_expect_burst is not None:
                _fail(
                    "--adaptive-expect-burst prices a burst index by a measured table's bursty rows; the analytical "
                    "predictor of --adaptive-profile prices burstiness by the SCV of the gaps: leave it out, or "
                    "adapt with --adaptive TABLE.json from `shoal measure --bursty-like`"
                )
            assert adaptive_profile is not None
            option = "--adaptive-input-mix"
            mix = parse_input_mix(adaptive_input_mix, option)
            score = analytical_score(
                adaptive_profile, the_app.slo, adaptive_learned, mix, app_name=the_app.name, mix_option=option
            )
        on_start = _adaptive_starter(
            the_app,
            the_plan,
            default,
            score,
            adaptive_window,
            adaptive_dwell,
            slo_target,
            adaptive_horizon,
            adaptive_horizon_as,
            adaptive_emergency,
            adaptive_expect_burst,
            adaptive_expect_rate,
            adaptive_forecast,
            adaptive_history,
            adaptive_meter,
            adaptive_explore,
        )
    elif adaptive_history is not None or adaptive_meter or adaptive_explore:
        if adaptive_meter or adaptive_explore:
            what = "--adaptive-meter" if adaptive_meter else "--adaptive-explore"
            _fail(f"{what} prices the adaptive loop's plans: add --adaptive TABLE.json or --adaptive-profile")
        _fail("--adaptive-history keeps the adaptive loop's look-back: add --adaptive TABLE.json or --adaptive-profile")
    typer.secho(
        f"serving {the_app.name!r} under plan {the_plan.label!r} "
        f"({len(the_plan.functions)} functions) on http://{bind}:{port}",
        err=True,
    )
    run_server(
        [(the_app, the_plan)], bind=bind, port=port, token=token, config=config, log_level=log_level, on_start=on_start
    )


def _table_score(table: Path, app: App, plan: Plan, horizon_as: str) -> Callable[..., Any]:
    """The measured table of `serve --adaptive`, checked against the served app and plan, as the planner's score."""
    from shoal.predict.measured import MeasuredError, MeasuredPredictor

    try:
        predictor = MeasuredPredictor.load(table)
    except MeasuredError as e:
        _fail(str(e))
    if predictor.slo is not None and predictor.slo != str(app.slo):
        _fail(f"{table} was scored against {predictor.slo}, but {app.name!r} has SLO {app.slo}; measure it again")
    if plan.label not in predictor.plans:
        _fail(f"{table} has no measurement of the served plan {plan.label!r}; measured: {', '.join(predictor.plans)}")
    if horizon_as == "load" and all(r.scv < 1.5 for r in predictor.rows):
        typer.secho(
            f"warning: {table} has no row measured under bursty load, so the horizon's load is priced from Poisson "
            "rows; measure with `shoal measure --bursty-cycle SECONDS` for what bursts cost",
            err=True,
            fg="yellow",
        )
    return predictor.predict


def _adaptive_starter(
    app: App,
    plan: Plan,
    default: FunctionConfig,
    score: Callable[..., Any],
    window_s: float,
    dwell_s: float,
    target: float,
    horizon_s: float = 0.0,
    horizon_as: str = "mix",
    emergency_s: float = 0.0,
    expected_burst: float | None = None,
    expected_rate: float | None = None,
    forecast_s: float = 0.0,
    history: Path | None = None,
    meter: bool = False,
    explore: bool = False,
) -> Callable[[Host], None]:
    """What `serve --adaptive` runs once the host has started: an AdaptiveLoop over the plans ``score`` can price."""
    from shoal.policy.granularity import HORIZON_MODES, ControllerConfig, GranularityController
    from shoal.policy.served import ServedCosts
    from shoal.predict.planner import Planner
    from shoal.runtime.adaptive import AdaptiveLoop

    try:
        controller = GranularityController(ControllerConfig(slo_target=target, min_dwell_s=dwell_s))
    except ValueError as e:
        _fail(str(e))
    if not window_s > 0:
        _fail(f"--adaptive-window must be > 0, got {window_s:g}")
    if horizon_s and not horizon_s >= window_s:
        _fail(f"--adaptive-horizon must be 0 (off) or at least --adaptive-window ({window_s:g} s), got {horizon_s:g}")
    if emergency_s and not 0 < emergency_s <= window_s:
        _fail(
            f"--adaptive-emergency must be 0 (off) or in (0, --adaptive-window = {window_s:g} s], got {emergency_s:g}"
        )
    if horizon_as not in HORIZON_MODES:
        _fail(f"--adaptive-horizon-as takes {' or '.join(HORIZON_MODES)}, got {horizon_as!r}")
    if horizon_as == "load" and not horizon_s:
        _fail("--adaptive-horizon-as load needs a horizon: add --adaptive-horizon SECONDS (e.g. 120)")
    for option, value in (("--adaptive-expect-burst", expected_burst), ("--adaptive-expect-rate", expected_rate)):
        if value is not None and not (horizon_as == "load" and value >= 0):
            _fail(
                f"{option} takes a number >= 0 and a horizon priced as one load: add --adaptive-horizon SECONDS "
                "--adaptive-horizon-as load"
            )
    lookahead = None
    if forecast_s:
        from shoal.policy.forecast import Lookahead

        if not (forecast_s >= 16 and forecast_s >= 3 * window_s):
            _fail(
                f"--adaptive-forecast must be 0 (off) or at least 16 s and 3 windows ({3 * window_s:g} s): it has "
                f"to hold three periods of the bursts it looks for; got {forecast_s:g}"
            )
        lookahead = Lookahead(forecast_s)
    arrival_log = None
    if history is not None:
        from shoal.runtime.arrival_log import ArrivalLog, ArrivalLogError

        if not (forecast_s or horizon_s):
            _fail(
                "--adaptive-history keeps the look-back of --adaptive-forecast or --adaptive-horizon; with neither, "
                "the loop reads one window only and there is nothing to keep: add one of them"
            )
        try:
            arrival_log = ArrivalLog(history)
        except ArrivalLogError as e:
            _fail(str(e))
    planner = Planner(app, score, slo_target=target, default=default)
    made: dict[str, Plan] = {}

    def candidates_for(load: Any, plans: Any) -> Any:
        choices = planner.search(load)
        made.update((c.label, c.plan) for c in choices)
        return [c.candidate() for c in choices]

    def start(host: Host) -> None:
        loop = AdaptiveLoop(
            host,
            app.name,
            [plan],
            candidates_for,
            controller,
            window_s,
            resolve=made.__getitem__,
            horizon_s=horizon_s or None,
            horizon_as=horizon_as,
            emergency_s=emergency_s or None,
            expected_burst=expected_burst,
            expected_rate=expected_rate,
            lookahead=lookahead,
            arrival_log=arrival_log,
            served=ServedCosts(slo_trials=explore) if meter or explore else None,
        )
        host.adapt(loop)

    return start


@cli.command()
def status(
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(help="Bearer token, if the server was bound beyond localhost.")] = None,
    output: Annotated[str, typer.Option(help="table | json")] = "table",
) -> None:
    """Show functions, instances, queues and costs of a running server."""
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        doc = httpx.get(f"{url}/status", headers=headers, timeout=10).raise_for_status().json()
    except httpx.HTTPError as e:
        _fail(f"cannot read {url}/status: {e}. Is `shoal serve` running there?")
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    from shoal.report import print_status

    print_status(doc)


@cli.command()
def invoke(
    app: Annotated[str, typer.Argument(help="Application name, as deployed.")],
    data: Annotated[str, typer.Option(help="JSON input, or @FILE.npy / @FILE.json.")] = "null",
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
) -> None:
    """Send one request and print the reply with its timing breakdown."""
    import httpx

    if data.startswith("@"):
        path = Path(data[1:])
        ctype = "application/x-npy" if path.suffix == ".npy" else "application/json"
        body = path.read_bytes()
    else:
        ctype, body = "application/json", data.encode()
    try:
        r = httpx.post(f"{url}/apps/{app}/invoke", content=body, headers={"content-type": ctype}, timeout=60)
    except httpx.HTTPError as e:
        _fail(f"cannot reach {url}: {e}. Is `shoal serve` running there?")
    typer.echo(json.dumps(r.json(), indent=2))
    if r.status_code != 200:
        raise typer.Exit(1)


@cli.command()
def switch(
    app: Annotated[str, typer.Argument(help="Application name, as deployed.")],
    plan: Annotated[str, typer.Argument(help="fine | coarse | groups like 'a+b,c'.")],
    warm: Annotated[
        list[str] | None,
        typer.Option(help="FUNCTION=N: start N instances of a new function before traffic moves (repeatable)."),
    ] = None,
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(help="Bearer token, if the server was bound beyond localhost.")] = None,
) -> None:
    """Switch a running application to another plan, live: no request is lost or failed.

    The new plan's functions are warmed first (functions both plans share keep their instances), then new requests
    go to the new plan and the old functions close when their last request is done.

    Example: shoal switch image 'preprocess,backbone+head' --warm backbone+head=2
    """
    import httpx

    counts: dict[str, int] = {}
    for item in warm or []:
        name, sep, n = item.rpartition("=")
        if not sep or not name or not n.isdigit():
            _fail(f"--warm takes FUNCTION=N, such as backbone+head=2; got {item!r}")
        counts[name] = int(n)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.post(f"{url}/apps/{app}/plan", json={"plan": plan, "warm": counts}, headers=headers, timeout=120)
    except httpx.HTTPError as e:
        _fail(f"cannot reach {url}: {e}. Is `shoal serve` running there?")
    if r.status_code != 200:
        _fail(f"the switch was refused ({r.status_code}): {r.json().get('error', r.text)}")
    doc = r.json()
    typer.echo(
        f"{doc['app']} now serves plan {doc['plan']} (switch took {doc['switch_s'] * 1e3:.0f} ms); "
        f"kept {doc['kept'] or 'none'}, warmed {doc['warmed'] or 'none'}, draining {doc['draining'] or 'none'}"
    )


@cli.command()
def demo(
    seconds: Annotated[float, typer.Option(help="Seconds of load per plan.")] = 8.0,
    rate: Annotated[float, typer.Option(help="Offered load, requests per second (open loop, Poisson).")] = 40.0,
) -> None:
    """Serve the example image pipeline under the fine and the coarse plan, drive load, and compare."""
    from shoal.demo import run_demo

    run_demo(seconds=seconds, rate=rate)
