"""The granularity experiment (issue 6): adaptive granularity against every fixed plan and a per-window oracle, on
the real embedded runtime.

Per application:
1. **Calibrate** (``--calibrate``, or when results/granularity_<app>_measured.json is missing): each candidate plan
   under Poisson load at the app's three rates, ``--calibrate-seconds`` each: the empirical predictor's table. With
   ``--bursty-calibration`` also under bursty load (``generators.bursts``: by default bursts at 4x the quiet rate,
   15-s cycles, SCV 2, not the bursty workload's shape; ``--bursty-peak 6 --bursty-cycle 25 --bursty-share 0.4``
   is the workload's, peak 8 on image; ``--bursty-like-workload`` fits the shape to an hour of the bursty
   workload's history, as ``shoal measure --bursty-like`` does to a user's traffic) at the low and mid rates,
   for ``--horizon-as load``. ``--calibrate-repeats N`` serves every point N times on other seeds and takes the mean.
2. For each load pattern and repeat (seeded arrivals, the same for every arm):
   - every **fixed** plan, replayed open loop (``shoal.runtime.replay``);
   - **adaptive**: served from the plan the planner picks for the first window's load, with the planner scoring the
     measured plans every window and the controller switching live (``--expect-history``: expecting the mean rate
     and burst index of the workload's history until a horizon of it has been seen, ``Horizon(expected_rate=...,
     expected_burst=...)``);
   - the **oracle**: per window, the best fixed plan of that window by the controller's own rule, composed from the
     fixed runs' windows (it knows the load in advance and pays nothing to switch: an upper bound);
   - with ``--profile PROFILE.json`` (one app), **adaptive (analytical)**: the same loop over every grouping of the
     app, scored by the analytical predictor from the profile at the runs' even input mix (``--learned FILE``:
     corrected by the learned predictor's trees, **adaptive (learned)**), as ``shoal serve --adaptive-profile``;
   - with ``--scheduled-oracle``, the **scheduled oracle**: the cheapest schedule of plans the rule admits in every
     window, switches priced as the adaptive loop first prices them (``policy.hindsight.switching_schedule``),
     served live, each switch started a warm-up ahead of its window: the load known in advance, switches paid for;
   - with ``--served``, **adaptive (served)**: the adaptive loop with plans priced by what they cost where they
     served, and close calls tried (``policy.served.ServedCosts``, ``shoal serve --adaptive-meter``);
   - with ``--explore``, **adaptive (explore)**: the same, its plans' SLO hit corrected by what they served too,
     and a plan the table calls just short of the target tried within an error budget (``ServedCosts(slo_trials=
     True)``, ``shoal serve --adaptive-explore``).
   ``--fixed coarse preprocess+backbone,head`` (one app): only those fixed plans, e.g. for runs long enough for an
   exploring loop's trial to end, where another plan is known to lose.
   ``--plan-target 0.995``: the adaptive arms plan for that SLO hit rate (``shoal serve --slo-target``), a margin
   above the 0.99 that every arm, the oracles' choices and the best static plan are judged by.
3. Mean and 95 % confidence interval (Student t over repeats) of SLO hit rate and resource cost per arm; the best
   static plan in hindsight is the best fixed arm by the controller's rule on the means.

    .venv/bin/python benchmarks/granularity.py --apps image --loads steady --seconds 30 --repeats 1   # a smoke run
    .venv/bin/python benchmarks/granularity.py                                                         # everything

Writes results/granularity.json, results/granularity.md and results/granularity_*.png (``--out NAME``: NAME.json
and so on; ``--merge A B --out C``: one table and plots from runs made apart, e.g. one app per session, each read
from results/ or, where this checkout has not made it, from the committed benchmarks/results/NAME.json.gz); every run
(calibration, fixed, adaptive) is kept whole under results/granularity_runs/APP/ (``ReplayResult.to_dict`` with
what was run), for ``benchmarks/predict_heldout.py``, which scores the three predictors on the runs none of them
was fitted on.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from _arms import (
    add_load_oracle,
    arms_table,
    ci95,
    first_load,
    history_load,
    plot_arms,
    shape_words,
    workload_bursts,
    workload_history,
)
from _common import KEPT, RESULTS, ROOT, console, load_result, machine_info, result_path, save

import shoal
from shoal.app import FunctionConfig, Plan
from shoal.policy.arrivals import BURST_SCALE_S
from shoal.policy.granularity import (
    HORIZON_MODES,
    Candidate,
    ControllerConfig,
    GranularityController,
    best_candidate,
    observe_load,
)
from shoal.policy.hindsight import per_window_best, switching_schedule
from shoal.policy.served import ServedCosts
from shoal.predict.measured import MeasuredPredictor
from shoal.predict.planner import Planner, profile_score
from shoal.predict.run_files import EVEN_MIX, run_file_doc
from shoal.runtime.adaptive import AdaptiveLoop
from shoal.runtime.host import HostConfig
from shoal.runtime.profiler.targets import load_target
from shoal.runtime.replay import ReplayResult, replay
from shoal.workload import generators
from shoal.workload.source import prepare

TRACE = ROOT.parent / "shared" / "traces" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"


@dataclass(frozen=True)
class Subject:
    ref: str
    plans: tuple[str, ...]
    rates: tuple[float, float, float]  # low, mid, high req/s on this machine


# Per app: fine, coarse and the middle plan that probing showed cheapest where coarse falls behind (the other
# middle plans were never best in the probes: docs/granularity.md). Rates: low / mid / high on this 2-core machine,
# chosen so that the high rate is where coarse stops being the cheapest plan that meets the SLO (text, image) or,
# for multi, where no crossover was found below 50 req/s (coarse should win throughout).
APPS = {
    "image": Subject(
        "examples/image_classification.py:resnet18",
        ("fine", "coarse", "preprocess+backbone,head"),
        (2.0, 8.0, 16.0),
    ),
    "text": Subject(
        "examples/text_pipeline.py",
        ("fine", "coarse", "tokenize+encode,classify"),
        (4.0, 12.0, 24.0),
    ),
    "multi": Subject(
        "examples/multi_model.py",
        ("fine", "coarse", "preprocess+backbone,detect+classify+merge"),
        (8.0, 24.0, 48.0),
    ),
}
SLO_TARGET = 0.99
WINDOW_S = 5.0
HORIZON_S: float | None = None  # --horizon-s: the adaptive arm weighs plans over the recent windows' loads
HORIZON_AS = "mix"  # --horizon-as: the windows' mix, or the horizon's arrivals priced as one load
EMERGENCY_S: float | None = None  # --emergency-s: also look for SLO emergencies this often between windows
BURST_CYCLE_S = 15.0  # bursty calibration: quiet 10 s, bursts 5 s on average (the workload's: 15 and 10 s)
BURST_PEAK = 4.0  # bursty calibration: bursts at this many times the quiet rate (the workload's: 6, image's 8)
BURST_SHARE = 1.0 / 3.0  # bursty calibration: the bursts' part of each cycle (the workload's: 0.4)
SWITCH_LEAD_S = 2.0  # scheduled oracle: a switch's first guessed warm-up (the adaptive loop's first overlap)
REPLAY_LEAD_S = 0.3  # replay's lead before its first arrival (``replay(lead_s=...)``'s default)
LATE_S = 0.05  # a sample of a run taken this late or later says the serving loop was held up (replay's late_s)
# --served: meter a plan this long after the start or a switch, the host's stable window and a keep-alive (10 s
# each, host_config and fn_config): its scale-out from the warm instances and its scale-in after are not its price.
SERVED_SETTLE_S = 20.0
HISTORY_S = 3600.0  # --bursty-like-workload, --expect-history: the workload's history (runs of other seeds)
# --plan-target: the SLO hit rate the adaptive loops plan for (their controller, planner and first plan); every arm
# is judged against SLO_TARGET. Above it, a margin for a plan the table puts at the target by a sliver, which runs
# then miss as often as they meet (text's middle plan on the trace: 0.957-0.997 over 6 runs, BENCHMARKS §12m).
PLAN_TARGET = SLO_TARGET
# Shorter dwell and payback than the defaults (60 s) so that a run of a minute can show switches at all.
CONTROLLER = ControllerConfig(
    slo_target=SLO_TARGET, confirm_windows=2, min_dwell_s=15, payback_s=30, slo_tolerance=0.01
)


def loads(subject: Subject, name: str, seconds: float, seed: int) -> np.ndarray:
    low, mid, high = subject.rates
    if name == "steady":
        return generators.poisson(mid, seconds, seed=seed)
    if name == "bursty":  # quiet phases of ~15 s, bursts of ~10 s
        return generators.mmpp([low, high], [15.0, 10.0], seconds, seed=seed)
    if name == "trace":  # the Azure LLM conversation trace, its first hour squeezed into the run, at mean rate `mid`
        t = prepare(str(TRACE), seed=seed)
        t = t.window(0.0, 3600.0).compressed(3600.0 / seconds)
        return t.rate_scaled(mid * seconds / max(1, len(t)), seed=seed).times
    raise ValueError(f"unknown load {name!r}: steady, bursty or trace")


def host_config() -> HostConfig:
    # Windows shorter than Knative's 60/6 s so that scaling happens within a run of a few minutes.
    return HostConfig(tick_s=0.1, stable_window_s=10.0, panic_window_s=2.0)


def fn_config() -> FunctionConfig:
    return FunctionConfig(keep_alive_s=10.0, max_instances=4)


OUT = "granularity"  # --out: the results' name (results/OUT.json, OUT_runs/, OUT_APP_measured.json, ...)
RUNS = RESULTS / f"{OUT}_runs"


def run_path(name: str, *, kind: str, load: str, repeat: int, plan: str, rate: float | None = None) -> Any:
    """Where ``keep_run`` keeps a run: results/OUT_runs/APP/KIND-LOAD[-RATE]-REPEAT-PLAN.json."""
    what = [kind, load, rate, repeat, plan] if rate is not None else [kind, load, repeat, plan]
    slug = "-".join(str(v) for v in what).replace(",", "_").replace("+", "-").replace(" ", "")
    return RUNS / name / f"{slug}.json"


def keep_run(
    name: str,
    subject: Subject,
    app: shoal.App,
    res: ReplayResult,
    seconds: float,
    *,
    kind: str,
    load: str,
    repeat: int,
    plan: str,
    rate: float | None = None,
) -> None:
    """Save one run whole as a run file (``shoal.predict.run_files``, the layout ``shoal measure --runs-out``
    writes), with the function settings and the input mix it ran with; JSON, never pickled."""
    out = run_path(name, kind=kind, load=load, repeat=repeat, plan=plan, rate=rate)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = run_file_doc(
        subject.ref, plan, str(app.slo), seconds, res.to_dict(), kind=kind, load=load, rate=rate, repeat=repeat,
        config=fn_config(), input_mix=EVEN_MIX, app_name=app.name,
    )  # fmt: skip
    out.write_text(json.dumps({"app": name} | doc))


def run_once(app: shoal.App, plan: Plan, times: np.ndarray, inputs: list[Any], adapt: Any = None) -> ReplayResult:
    with shoal.local(app, plan, host_config()) as svc:
        svc.invoke(inputs[0])  # one warm instance per function before the clock starts, for every arm alike
        if adapt is not None:
            adapt(svc)
        end = float(times[-1]) + 2.0
        return svc._run(
            replay(svc.host, app.name, times, lambda i: inputs[i % len(inputs)], sample_s=0.25, end_s=end),
            timeout=end * 5 + 120,
        )


def calibrate(
    name: str,
    subject: Subject,
    app: shoal.App,
    inputs: list[Any],
    seconds: float,
    bursty: bool = False,
    settle: float = 0.0,
    repeats: int = 1,
) -> MeasuredPredictor:
    """Each plan under Poisson load at the app's rates (and, ``bursty``, under bursty load at the low and mid rates);
    with ``settle``, each run serves that many seconds of the same load first and is measured after them: the start
    (scale-out from one warm instance, then the stable window and keep-alive before it scales in) is a larger part of
    a 60-s run than of the 3-min arms (text: the middle plan at 12 req/s cost 0.139 USD/h over a 60-s calibration
    run, 0.128 over the 180-s fixed runs, and the table called coarse 1 % cheaper where it cost 9-15 % more, §12l),
    as the GPU scenarios' calibration measures after a settling minute. With ``repeats``, every point is served that
    many times on other seeds and the table takes the mean (``MeasuredPredictor`` averages rows at one rate): a plan
    that sits at its autoscaler's threshold (text's coarse plan at 12 req/s, one or two instances) gives a cost that
    one run draws from one mode or the other (settling measured not to help, §12l)."""
    rows = []
    path = RESULTS / f"{OUT}_{name}_measured.json"
    kinds = [("poisson", rate) for rate in subject.rates]
    if bursty:
        kinds += [("bursty", rate) for rate in subject.rates[:2]]
    points = [(r, label, kind, rate) for r in range(repeats) for label in subject.plans for kind, rate in kinds]
    for i, (repeat, label, kind, rate) in enumerate(points):  # a repeat whole before the next
        plan = Plan.parse(app, label, default=fn_config())
        span, seed = settle + seconds, 99 + repeat
        if kind == "poisson":
            times = generators.poisson(rate, span, seed=seed)
        else:
            times = generators.bursts(rate, span, BURST_CYCLE_S, peak=BURST_PEAK, seed=seed, share=BURST_SHARE)
        res = run_once(app, plan, times, inputs)
        keep_run(name, subject, app, res, span, kind="calibrate", load=kind, rate=rate, repeat=repeat, plan=label)
        # the row's burstiness is its process's: 60 s of 15-s cycles scatter too widely around it (1.5-3) for
        # rows at several rates to share a class (MeasuredPredictor)
        scv, burst = (1.0, 0.0)
        if kind == "bursty":
            scv = generators.bursts_scv(BURST_PEAK, BURST_SHARE)
            burst = generators.bursts_index(BURST_PEAK, BURST_CYCLE_S, share=BURST_SHARE)
        row = dataclasses.replace(res.measurement(app.slo.latency_s, settle, span), scv=scv, burst=burst)
        rows.append(row)
        console.print(
            f"[dim]calibrate {name} {label:45s} {rate:5.1f} req/s {kind}: SLO hit "
            f"{row.slo_hit:.3f}, cost {row.cost_per_s * 3600:.4f} USD/h, p99 {row.p99_ms:.0f} ms[/]"
        )
        if i + 1 < len(points) and points[i + 1][0] != repeat:  # a repeat done: its table, should the run stop
            MeasuredPredictor(rows, slo=str(app.slo), burst_scale_s=BURST_SCALE_S).save(path)
    table = MeasuredPredictor(rows, slo=str(app.slo), burst_scale_s=BURST_SCALE_S)
    table.save(path)
    return table


def adaptive_arm(
    app: shoal.App,
    score: Any,
    expected: tuple[float, float] | None = None,
    served: bool = False,
    explore: bool = False,
) -> Any:
    """The adaptive loop over the plans ``score`` prices (the measured table's ``predict``, or ``profile_arm``'s);
    ``served``: plans priced by what they cost where they served, close calls tried (``policy.served``); ``explore``:
    SLO hit corrected by what they served too, and plans the table calls just short tried (``slo_trials``)."""
    planner = Planner(app, score, slo_target=PLAN_TARGET, default=fn_config())
    made: dict[str, Plan] = {}

    def candidates_for(load: Any, plans: Any) -> list[Candidate]:
        choices = planner.search(load)
        made.update((c.label, c.plan) for c in choices)
        return [c.candidate() for c in choices]

    loops: list[AdaptiveLoop] = []

    def start(svc: Any) -> None:
        controller = GranularityController(CONTROLLER)
        loops.append(
            svc.adapt(
                [],
                candidates_for,
                controller,
                window_s=WINDOW_S,
                resolve=made.__getitem__,
                horizon_s=HORIZON_S,
                horizon_as=HORIZON_AS,
                emergency_s=EMERGENCY_S,
                expected_rate=None if expected is None else expected[0],
                expected_burst=None if expected is None else expected[1],
                served=ServedCosts(settle_s=SERVED_SETTLE_S, slo_trials=explore) if served else None,
            )
        )

    return start, loops


def profile_arm(app: shoal.App, profile_path: str, learned: str | None) -> tuple[str, Any]:
    """The score of ``--profile``'s arm: the analytical predictor over the app's profile (corrected by ``--learned``'s
    trees), at the runs' even mix of input sizes, over every grouping of the app (not only the measured plans)."""
    from shoal.predict.analytical import AnalyticalPredictor
    from shoal.predict.app_learned import LearnedPredictor
    from shoal.predict.profile_io import read_profile

    profile = read_profile(profile_path)
    if profile.app.name != app.name:
        raise SystemExit(f"--profile {profile_path} is a profile of {profile.app.name!r}, not of {app.name!r}")
    predictor = AnalyticalPredictor(samples=5000) if learned is None else LearnedPredictor.load(learned)
    return f"adaptive ({predictor.kind})", profile_score(predictor, profile, app.slo, EVEN_MIX)


def fixed_windows(fixed: dict[str, ReplayResult], slo_s: float) -> dict[str, list[dict[str, Any]]]:
    """Each fixed run cut into the controller's windows (``ReplayResult.windows``), read once for both oracles."""
    return {label: res.windows(WINDOW_S, slo_s) for label, res in fixed.items()}


def window_candidates(per_plan: dict[str, list[dict[str, Any]]], window_s: float) -> list[list[Candidate]]:
    """Per window, what each fixed plan did there: its SLO hit rate (1 without requests) and cost per second."""
    n = min(len(w) for w in per_plan.values())
    return [
        [
            Candidate(
                label, wins[k]["slo_hit"] if wins[k]["requests"] else 1.0, max(0.0, wins[k]["cost_usd"]) / window_s
            )
            for label, wins in per_plan.items()
        ]
        for k in range(n)
    ]


def arrivals_and_candidates(per_plan: dict[str, list[dict[str, Any]]]) -> tuple[list[int], list[list[Candidate]]]:
    """One repeat's fixed runs as the load oracle reads them: arrivals per window (the same for every plan) and
    what each plan did there (``window_candidates``)."""
    windows = window_candidates(per_plan, WINDOW_S)
    first = next(iter(per_plan.values()))
    return [int(first[k]["requests"]) for k in range(len(windows))], windows


def load_oracle_from_runs(workload: dict[str, Any]) -> None:
    """``_arms.add_load_oracle`` for a workload of results/OUT.json, from its fixed runs kept under results/OUT_runs/;
    its summary updated."""
    from shoal.app.spec import SLO

    arms = workload["arms"]
    plans = [a[len("fixed ") :] for a in arms if a.startswith("fixed ")]
    runs = []
    for rep in range(len(arms["adaptive"]["cost_usd"])):
        per_plan = {}
        for plan in plans:
            path = run_path(workload["app"], kind="fixed", load=workload["load"], repeat=rep, plan=plan)
            if not path.exists():
                raise SystemExit(f"{path} is missing: the load oracle needs every fixed run of {workload['app']}")
            kept = json.loads(path.read_text())
            per_plan[plan] = ReplayResult.from_dict(kept["run"]).windows(WINDOW_S, SLO.parse(kept["slo"]).latency_s)
        runs.append(arrivals_and_candidates(per_plan))
    arms.pop("load oracle", None)
    add_load_oracle(arms, workload["timelines"], runs, SLO_TARGET, WINDOW_S)
    workload["summary"]["load oracle"] = {m: ci95(v) for m, v in arms["load oracle"].items()}


def oracle(per_plan: dict[str, list[dict[str, Any]]], window_s: float) -> dict[str, Any]:
    """Per window, the best fixed plan of that window by the controller's rule, composed from the fixed runs'
    windows (``fixed_windows``; free and instant switches: a bound)."""
    chosen = per_window_best(window_candidates(per_plan, window_s), SLO_TARGET)
    hits = reqs = cost = 0.0
    for k, plan in enumerate(chosen):
        w = per_plan[plan][k]
        reqs += w["requests"]
        hits += (w["slo_hit"] if w["requests"] else 0.0) * w["requests"]
        cost += max(0.0, w["cost_usd"])
    return {"slo_hit": hits / reqs if reqs else math.nan, "cost_usd": cost, "plans": chosen}


def scheduled_oracle(app: shoal.App, per_plan: dict[str, list[dict[str, Any]]]) -> tuple[list[str], Any, list]:
    """The oracle that knows the load in advance and pays to switch: the cheapest schedule of plans the
    controller's rule admits in every window, each switch priced over ``SWITCH_LEAD_S`` as the adaptive loop first
    prices it (``policy.hindsight.switching_schedule``), served live: each switch (``Host.switch_plan``) starts a
    warm-up ahead of its window (``SWITCH_LEAD_S``, then the longest switch made so far). Returns the schedule, the
    arm (for ``run_once``) and the list it records each switch in."""
    plans = switching_schedule(window_candidates(per_plan, WINDOW_S), SLO_TARGET, WINDOW_S, SWITCH_LEAD_S)
    changes = [(k * WINDOW_S, p) for k, p in enumerate(plans) if k and p != plans[k - 1]]
    made: list[dict[str, Any]] = []

    def start(svc: Any) -> None:
        base = svc.loop.time() + REPLAY_LEAD_S  # replay's clock starts its lead after the arm starts

        async def follow() -> None:
            lead = SWITCH_LEAD_S
            for due, label in changes:
                await asyncio.sleep(max(0.0, base + due - lead - svc.loop.time()))
                began = svc.loop.time() - base
                summary = await svc.host.switch_plan(app.name, Plan.parse(app, label, default=fn_config()))
                lead = max(lead, float(summary["switch_s"]))
                made.append({"t": began, "due": due, "switch_to": label, "switch_s": summary["switch_s"]})

        asyncio.run_coroutine_threadsafe(follow(), svc.loop)

    return plans, start, made


def main() -> None:
    # read by the helpers and report
    global HORIZON_S, HORIZON_AS, EMERGENCY_S, OUT, RUNS, BURST_CYCLE_S, BURST_PEAK, BURST_SHARE
    global PLAN_TARGET, CONTROLLER
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps", nargs="+", default=list(APPS), choices=list(APPS))
    ap.add_argument("--loads", nargs="+", default=["steady", "bursty", "trace"])
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calibrate", action="store_true", help="measure the plans again even if a table exists")
    ap.add_argument("--calibrate-seconds", type=float, default=20.0)
    ap.add_argument(
        "--calibrate-settle",
        type=float,
        default=0.0,
        help="serve each calibration load this many seconds before measuring it (the start out of the row)",
    )
    ap.add_argument(
        "--calibrate-repeats",
        type=int,
        default=1,
        help="serve each calibration point this many times on other seeds; the table takes the mean",
    )
    ap.add_argument("--report-only", action="store_true", help="redo the table and plots from results/granularity.json")
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the workloads already in results/NAME.json that this run does not measure again (other apps, or "
        "other loads of these apps)",
    )
    ap.add_argument("--horizon-s", type=float, default=None, help="adaptive: weigh plans over this many seconds")
    ap.add_argument("--horizon-as", default="mix", choices=HORIZON_MODES, help="adaptive: mix windows, or one load")
    ap.add_argument("--bursty-calibration", action="store_true", help="also calibrate under bursty load (SCV 2)")
    ap.add_argument("--bursty-cycle", type=float, default=BURST_CYCLE_S, help="bursty calibration: quiet + burst, s")
    ap.add_argument("--bursty-peak", type=float, default=BURST_PEAK, help="bursty calibration: burst / quiet rate")
    ap.add_argument("--bursty-share", type=float, default=BURST_SHARE, help="bursty calibration: bursts' part")
    ap.add_argument(
        "--bursty-like-workload",
        action="store_true",
        help="bursty calibration: fit peak and cycle to an hour of the bursty workload (other seeds)",
    )
    ap.add_argument(
        "--expect-history",
        action="store_true",
        help="adaptive (--horizon-as load): expect each workload's rate and bursts from an hour of its history",
    )
    ap.add_argument("--emergency-s", type=float, default=None, help="adaptive: SLO emergency checks between windows")
    ap.add_argument(
        "--plan-target",
        type=float,
        default=SLO_TARGET,
        help=f"adaptive: plan for this SLO hit rate (a margin above the {SLO_TARGET} every arm is judged against)",
    )
    ap.add_argument(
        "--scheduled-oracle",
        action="store_true",
        help="also serve the oracle's schedule live, paying for its switches (one more run per repeat)",
    )
    ap.add_argument(
        "--profile",
        default=None,
        help="one app: also run adaptive over every grouping scored by the analytical predictor from this profile",
    )
    ap.add_argument("--learned", default=None, help="with --profile: correct it with this `predict fit-app` file")
    ap.add_argument(
        "--served",
        action="store_true",
        help="one more arm: adaptive with plans priced by the meter where they served, close calls tried (ServedCosts)",
    )
    ap.add_argument(
        "--fixed",
        nargs="+",
        default=None,
        metavar="PLAN",
        help="one app: serve only these of its fixed plans (all by default), e.g. to run long where one plan is "
        "known to lose; the best static plan and the oracles are then chosen among these",
    )
    ap.add_argument(
        "--explore",
        action="store_true",
        help="one more arm: --served's loop also correcting SLO hit by what plans served, and trying plans the table "
        "calls just short of the target within an error budget (ServedCosts(slo_trials=True))",
    )
    ap.add_argument(
        "--load-oracle-from-runs",
        action="store_true",
        help="measure nothing: add the load oracle to results/OUT.json from the fixed runs kept in results/OUT_runs/ "
        "(for results made before it existed), then redo the table and plots",
    )
    ap.add_argument("--out", default=OUT, help="name of the results: results/OUT.json, .md, _*.png, OUT_runs/")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="NAME",
        default=None,
        help="measure nothing: put the workloads of results/NAME.json (a later NAME's replace an earlier one's of "
        "the same app and load) into results/OUT.json with its table and plots; settings that differ are said",
    )
    args = ap.parse_args()
    OUT, RUNS = args.out, RESULTS / f"{args.out}_runs"
    if args.merge:
        if args.out in args.merge:
            ap.error("--merge writes results/OUT.json: give an --out that is not among the merged names")
        missing = [n for n in args.merge if not result_path(n).exists()]
        if missing:
            ap.error(f"no results/{missing[0]}.json nor benchmarks/results/{missing[0]}.json.gz to merge")
        _report(merged([load_result(n) for n in args.merge], args.merge))
        return
    if args.report_only or args.load_oracle_from_runs:
        doc = json.loads((RESULTS / f"{OUT}.json").read_text())
        if args.load_oracle_from_runs:
            for w in doc["workloads"]:
                load_oracle_from_runs(w)
            save(OUT, doc)
        _report(doc)
        return
    if args.horizon_s is not None and not args.horizon_s >= WINDOW_S:
        ap.error(f"--horizon-s must be at least the window ({WINDOW_S:g} s)")
    HORIZON_S = args.horizon_s
    if not (args.bursty_cycle > 0 and args.bursty_peak >= 1 and 0 < args.bursty_share < 1):
        ap.error("--bursty-cycle must be > 0, --bursty-peak >= 1 and --bursty-share in (0, 1)")
    if not args.calibrate_settle >= 0:
        ap.error("--calibrate-settle must be >= 0 seconds")
    if args.calibrate_repeats < 1:
        ap.error("--calibrate-repeats must be at least 1")
    BURST_CYCLE_S, BURST_PEAK, BURST_SHARE = args.bursty_cycle, args.bursty_peak, args.bursty_share
    HORIZON_AS = args.horizon_as
    EMERGENCY_S = args.emergency_s
    if not SLO_TARGET <= args.plan_target <= 1:
        ap.error(f"--plan-target must be in [{SLO_TARGET}, 1]: the SLO hit rate to plan for, at least the judged one")
    PLAN_TARGET = args.plan_target
    CONTROLLER = replace(CONTROLLER, slo_target=PLAN_TARGET)
    if EMERGENCY_S is not None and not 0 < EMERGENCY_S <= WINDOW_S:
        ap.error(f"--emergency-s must be in (0, {WINDOW_S:g}]")
    if HORIZON_AS == "load" and HORIZON_S is None:
        ap.error("--horizon-as load needs --horizon-s")
    if args.expect_history and HORIZON_AS != "load":
        ap.error("--expect-history needs --horizon-as load")
    if args.profile is not None and len(args.apps) != 1:
        ap.error("--profile is one app's profile: give one --apps")
    if args.learned is not None and args.profile is None:
        ap.error("--learned corrects the analytical predictor: give --profile too")
    if args.fixed is not None:
        if len(args.apps) != 1:
            ap.error("--fixed names one app's plans: give one --apps")
        unknown = [p for p in args.fixed if p not in APPS[args.apps[0]].plans]
        if unknown:
            ap.error(f"--fixed: {unknown[0]!r} is not a plan of {args.apps[0]}: {', '.join(APPS[args.apps[0]].plans)}")
    RESULTS.mkdir(exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    doc: dict[str, Any] = {"machine": machine_info(), "settings": vars(args), "started": started, "workloads": []}
    if args.append and result_path(OUT).exists():  # results/OUT.json, or the one a session before committed
        before = load_result(OUT)
        doc["workloads"] = [w for w in before["workloads"] if w["app"] not in args.apps or w["load"] not in args.loads]
        doc["earlier"] = [*before.get("earlier", []), {k: before[k] for k in ("settings", "started", "machine")}]
        rerun = {f"{app}/{load}" for app in args.apps for load in args.loads}
        for key in ("calibration_shape", "expected", "loop_late_max_s"):  # per app or workload: keep the others'
            doc[key] = {k: v for k, v in before.get(key, {}).items() if k not in rerun}
    for name in args.apps:
        subject = APPS[name]
        target = load_target(str(ROOT / subject.ref))
        app = target.app
        assert target.inputs is not None
        inputs = [target.inputs(s) for s in ("small", "medium", "large")]
        path = RESULTS / f"{OUT}_{name}_measured.json"
        if not args.calibrate and not path.exists() and (KEPT / path.name).exists():
            # a table a session before measured and committed (70 minutes for one app with 3 repeats per point)
            shutil.copyfile(KEPT / path.name, path)
            console.print(f"{name}: the committed table {(KEPT / path.name).relative_to(ROOT)}")
        if args.bursty_like_workload:
            history = workload_history(partial(loads, subject, "bursty"), args.seconds, HISTORY_S)
            BURST_PEAK, BURST_CYCLE_S, BURST_SHARE = workload_bursts(*history)
            shape = {"peak": BURST_PEAK, "cycle_s": BURST_CYCLE_S, "share": BURST_SHARE}
            doc.setdefault("calibration_shape", {})[name] = shape
            console.print(f"{name}: bursty calibration {shape_words(BURST_PEAK, BURST_CYCLE_S, BURST_SHARE)}")
        if args.calibrate or not path.exists():
            table = calibrate(
                name,
                subject,
                app,
                inputs,
                args.calibrate_seconds,
                args.bursty_calibration,
                args.calibrate_settle,
                args.calibrate_repeats,
            )
        else:
            table = MeasuredPredictor.load(path)
        for load in args.loads:
            arms: dict[str, dict[str, list[float]]] = {}
            timelines = []
            table_errors: dict[str, list[list[float]]] = {}
            expect = None
            if args.expect_history:  # what this workload's history says of its rate and bursts
                expect = history_load(
                    *workload_history(partial(loads, subject, load), args.seconds, HISTORY_S), piece_s=args.seconds
                )
                console.print(f"{name}/{load}: expected {expect[0]:.1f} req/s, burst index {expect[1]:.3f}")
                doc.setdefault("expected", {})[f"{name}/{load}"] = {"rate": expect[0], "burst": expect[1]}
            window_runs = []  # per repeat, what every fixed plan did per window: the load oracle's input
            for rep in range(args.repeats):
                times = loads(subject, load, args.seconds, seed=rep)
                fixed = {}
                for label in args.fixed or subject.plans:
                    fixed[label] = run_once(app, Plan.parse(app, label, default=fn_config()), times, inputs)
                    keep_run(
                        name, subject, app, fixed[label], args.seconds, kind="fixed", load=load, repeat=rep, plan=label
                    )
                start, loops = adaptive_arm(app, table.predict, expect)
                # adaptive starts where the planner puts the first window's load (a deployment knows its expected load)
                first = first_load(float((times < WINDOW_S).sum()) / WINDOW_S, expect, WINDOW_S, HORIZON_S)
                initial = Planner(app, table.predict, slo_target=PLAN_TARGET, default=fn_config()).best(first).plan
                adaptive = run_once(app, initial, times, inputs, start)
                keep_run(
                    name, subject, app, adaptive, args.seconds, kind="adaptive", load=load, repeat=rep, plan="adaptive"
                )
                results = {f"fixed {k}": v for k, v in fixed.items()} | {"adaptive": adaptive}
                profile_loops: list[AdaptiveLoop] = []
                if args.profile is not None:  # the same loop, over every grouping, priced from the profile
                    label, score = profile_arm(app, args.profile, args.learned)
                    begin = Planner(app, score, slo_target=PLAN_TARGET, default=fn_config()).best(first).plan
                    from_profile, profile_loops = adaptive_arm(app, score, expect)
                    results[label] = run_once(app, begin, times, inputs, from_profile)
                    keep_run(
                        name,
                        subject,
                        app,
                        results[label],
                        args.seconds,
                        kind="adaptive",
                        load=load,
                        repeat=rep,
                        plan=label,
                    )
                served_loops: dict[str, list[AdaptiveLoop]] = {}
                # the same loop, pricing plans by the meter where they served; exploring: SLO hit too, trials of
                # plans called just short
                for arm, wanted, explore in (("served", args.served, False), ("explore", args.explore, True)):
                    if not wanted:
                        continue
                    by_meter, served_loops[arm] = adaptive_arm(app, table.predict, expect, served=True, explore=explore)
                    results[f"adaptive ({arm})"] = run_once(app, initial, times, inputs, by_meter)
                    keep_run(
                        name,
                        subject,
                        app,
                        results[f"adaptive ({arm})"],
                        args.seconds,
                        kind="adaptive",
                        load=load,
                        repeat=rep,
                        plan=f"adaptive-{arm}",
                    )
                for arm, res in results.items():
                    a = arms.setdefault(arm, {"slo_hit": [], "cost_usd": []})
                    a["slo_hit"].append(res.slo_hit(app.slo.latency_s))
                    a["cost_usd"].append(res.cost_between(0.0, args.seconds))
                per_window = fixed_windows(fixed, app.slo.latency_s)
                window_runs.append(arrivals_and_candidates(per_window))
                o = oracle(per_window, WINDOW_S)
                arms.setdefault("oracle", {"slo_hit": [], "cost_usd": []})
                arms["oracle"]["slo_hit"].append(o["slo_hit"])
                arms["oracle"]["cost_usd"].append(o["cost_usd"])
                if args.scheduled_oracle:
                    schedule, follow, made = scheduled_oracle(app, per_window)
                    ahead = run_once(app, Plan.parse(app, schedule[0], default=fn_config()), times, inputs, follow)
                    keep_run(
                        name, subject, app, ahead, args.seconds, kind="scheduled", load=load, repeat=rep, plan="oracle"
                    )
                    a = arms.setdefault("scheduled oracle", {"slo_hit": [], "cost_usd": []})
                    a["slo_hit"].append(ahead.slo_hit(app.slo.latency_s))
                    a["cost_usd"].append(ahead.cost_between(0.0, args.seconds))
                timelines.append(
                    {"adaptive": loops[0].history if loops else [], "oracle": o["plans"]}
                    | ({"adaptive_profile": profile_loops[0].history} if args.profile is not None else {})
                    | {f"adaptive_{arm}": loops_[0].history for arm, loops_ in served_loops.items()}
                    | ({"scheduled_oracle": schedule, "scheduled_switches": made} if args.scheduled_oracle else {})
                )
                whole = observe_load(times, args.seconds, args.seconds, BURST_SCALE_S)
                for label, res in fixed.items():  # the table read at the whole run's load (rate, SCV) against it
                    at = table.predict(label, whole)
                    cost = res.cost_between(0.0, args.seconds)
                    table_errors.setdefault(label, []).append(
                        [at.slo_hit - res.slo_hit(app.slo.latency_s), at.cost_per_s * args.seconds / cost - 1]
                    )
                console.print(
                    f"{name}/{load} repeat {rep}: "
                    + ", ".join(f"{k} {v['slo_hit'][-1]:.3f}/{v['cost_usd'][-1] * 1e4:.2f}" for k, v in arms.items())
                )
                live_runs = results | ({"scheduled oracle": ahead} if args.scheduled_oracle else {})
                late = {a: max((x.get("late_s", 0.0) for x in r.samples), default=0.0) for a, r in live_runs.items()}
                doc.setdefault("loop_late_max_s", {}).setdefault(f"{name}/{load}", []).append(late)
                if any(v > LATE_S for v in late.values()):  # a stall of the serving loop, not of a plan (12j)
                    console.print(
                        "  the serving loop was held up: "
                        + ", ".join(f"{arm} {v * 1e3:.0f} ms" for arm, v in late.items() if v > LATE_S)
                    )
            add_load_oracle(arms, timelines, window_runs, SLO_TARGET, WINDOW_S)
            summary = {arm: {m: ci95(v) for m, v in vals.items()} for arm, vals in arms.items()}
            fixed_means = [
                Candidate(arm, s["slo_hit"][0], s["cost_usd"][0])
                for arm, s in summary.items()
                if arm.startswith("fixed")
            ]
            best_static = best_candidate(fixed_means, SLO_TARGET).plan
            doc["workloads"].append(
                {
                    "app": name,
                    "load": load,
                    "arms": arms,
                    "summary": summary,
                    "best_static": best_static,
                    "timelines": timelines,
                    # predicted - measured SLO hit, relative cost error: the table at each fixed run's whole load
                    "table_error": {p: np.mean(e, axis=0).tolist() for p, e in table_errors.items()},
                }
            )
            save(OUT, doc)
    _report(doc)


#: Settings that may differ between merged runs without making their workloads incomparable.
MERGE_FREE = {"apps", "loads", "calibrate", "append", "out", "merge", "report_only"}
# settings that runs made before they existed had at these values
SETTING_DEFAULTS = {"plan_target": SLO_TARGET, "explore": False, "fixed": None}


def machine_kind(machine: dict[str, Any]) -> dict[str, Any]:
    """What of a run's machine decides its figures: the CPU, its cores, and the inference library."""
    return {k: machine.get(k) for k in ("cpu", "cores", "usable_cores")} | {
        "onnxruntime": machine.get("packages", {}).get("onnxruntime")
    }


def merged(docs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One results document from several runs' (``--merge``): their workloads, a later run's replacing an earlier
    one's of the same app and load; ``settings`` lists what differs between the runs beyond which apps and loads,
    the machine's kind included (another CPU runs the models at another speed: BENCHMARKS.md §12m)."""
    workloads: dict[tuple[str, str], dict[str, Any]] = {}
    for name, d in zip(names, docs, strict=True):
        for w in d["workloads"]:
            workloads[(w["app"], w["load"])] = w | {"from": name}
    keys = sorted({k for d in docs for k in d["settings"]} - MERGE_FREE)
    values = {k: [d["settings"].get(k, SETTING_DEFAULTS.get(k)) for d in docs] for k in keys}
    differ = {k: v for k, v in values.items() if len({repr(x) for x in v}) > 1}
    machines = [machine_kind(d["machine"]) for d in docs]
    if len({repr(m) for m in machines}) > 1:  # another CPU runs the models at another speed: plans cost otherwise
        differ["machine"] = machines
    if differ:
        console.print(f"[yellow]the merged runs differ in {differ}[/]")
    return {
        "machine": docs[-1]["machine"],
        "settings": {"merged": names, "differ": differ}
        | {k: docs[-1]["settings"].get(k) for k in keys if k not in differ},
        "started": ", ".join(f"{n}: {d['started']}" for n, d in zip(names, docs, strict=True)),
        "workloads": list(workloads.values()),
        "loop_late_max_s": {k: v for d in docs for k, v in d.get("loop_late_max_s", {}).items()},
        "earlier": [
            {"name": n} | {k: d[k] for k in ("settings", "started", "machine")}
            for n, d in zip(names, docs, strict=True)
        ],
    }


def _report(doc: dict[str, Any]) -> None:
    lines = [
        f"started {doc['started']}; {doc['settings']}",
        "",
        *arms_table(doc["workloads"], "USD 1e-4", cost_scale=1e4),
    ]
    lines += ["", "Against the targets (means over repeats):", ""]
    lines += [
        "| app | load | vs best static: SLO hit, cost | vs fine: SLO hit, cost | vs oracle: SLO hit, cost "
        "| vs load oracle: SLO hit, cost | vs scheduled oracle: SLO hit, cost |"
    ]
    lines += ["|---|---|---|---|---|---|---|"]
    for w in doc["workloads"]:
        s = w["summary"]
        ah, ac = s["adaptive"]["slo_hit"][0], s["adaptive"]["cost_usd"][0]

        def versus(arm: str, ah: float = ah, ac: float = ac, s: dict[str, Any] = s) -> str:
            if arm not in s:  # --fixed without fine, an oracle not asked for
                return "not run"
            h, c = s[arm]["slo_hit"][0], s[arm]["cost_usd"][0]
            return f"{ah - h:+.3f}, {100 * (ac / c - 1):+.1f} %"

        lines.append(
            f"| {w['app']} | {w['load']} | {versus(w['best_static'])} ({w['best_static']}) | {versus('fixed fine')} "
            f"| {versus('oracle')} | {versus('load oracle')} | {versus('scheduled oracle')} |"
        )
    errs = [w for w in doc["workloads"] if w.get("table_error")]
    if errs:
        lines += [
            "",
            "The table read at each fixed run's whole load (rate, SCV, burst index): predicted - measured SLO hit"
            " / cost:",
            "",
        ]
        for w in errs:
            lines.append(
                f"- {w['app']}/{w['load']}: "
                + "; ".join(f"{p} {h:+.3f} / {100 * c:+.0f} %" for p, (h, c) in w["table_error"].items())
            )
    (RESULTS / f"{OUT}.md").write_text("\n".join(lines) + "\n")
    _plot(doc)
    _timelines(doc)
    console.print("\n".join(lines))


def _timelines(doc: dict[str, Any]) -> None:
    """Per workload, the first repeat: the observed rate per window, the adaptive loop's plan and the oracle's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = [w for w in doc["workloads"] if w["timelines"]]
    if not ws:
        return
    fig, axes = plt.subplots(len(ws), 1, figsize=(9, 2.2 * len(ws)), squeeze=False, sharex=True)
    for ax, w in zip(axes.flat, ws, strict=True):
        tl = w["timelines"][0]
        hist = [e for e in tl["adaptive"] if "load" in e]
        plans = sorted({a[len("fixed ") :] for a in w["summary"] if a.startswith("fixed ")})
        level = {p: i for i, p in enumerate(plans)}
        ts = [e["t"] for e in hist]
        ax.step(ts, [level.get(e["plan"], -1) for e in hist], where="post", label="adaptive plan", color="C0")
        oracle = tl["oracle"]
        ax.step(
            [WINDOW_S * (k + 1) for k in range(len(oracle))],
            [level.get(p, -1) + 0.1 for p in oracle],
            where="pre",
            label="oracle plan",
            color="C2",
            ls="--",
        )
        if "scheduled_oracle" in tl:
            ax.step(
                [WINDOW_S * (k + 1) for k in range(len(tl["scheduled_oracle"]))],
                [level.get(p, -1) - 0.1 for p in tl["scheduled_oracle"]],
                where="pre",
                label="scheduled oracle plan",
                color="C3",
                ls=":",
            )
        if "load_oracle" in tl:
            ax.step(
                [WINDOW_S * (k + 1) for k in range(len(tl["load_oracle"]))],
                [level.get(p, -1) + 0.2 for p in tl["load_oracle"]],
                where="pre",
                label="load oracle plan",
                color="C4",
                ls="-.",
            )
        ax.set_yticks(range(len(plans)), [p if len(p) < 28 else p[:25] + "…" for p in plans], fontsize=7)
        ax.set_title(f"{w['app']} / {w['load']} (repeat 0)", fontsize=9)
        rate = ax.twinx()
        rate.plot(ts, [e["load"]["rate"] for e in hist], color="C1", alpha=0.6, label="rate")
        rate.set_ylabel("req/s", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    axes.flat[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{OUT}_timelines.png", dpi=110)
    plt.close(fig)


def _plot(doc: dict[str, Any]) -> None:
    plot_arms(doc["workloads"], RESULTS / f"{OUT}_arms.png", 1e4, "resource cost (USD 1e-4)")


if __name__ == "__main__":
    main()
