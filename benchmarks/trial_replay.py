"""What the adaptive loop's trials would do on the runtime experiment's fixed runs, replayed window by window.

A live run of an exploring loop (``granularity.py --explore``) is one draw of when its trials start and how they end;
this replays the loop's own policy over the fixed runs ``granularity.py`` keeps in ``results/OUT_runs/APP/``: every
5-s window, the loop's load readings (the window, and the 90-s horizon priced as one load with the workload's
expected rate and bursts, as the experiment's arms read them), the measured table's candidates, the controller,
and ``policy.served.ServedCosts`` metering what the plan it serves did in that window of its fixed run (cost, and
requests within the SLO). A switch is free and instant here (the new plan's fixed run was warm all along), so
the replay flatters switching: it says what the policy decides and what its trials find on the requests the runs
really served (their misses come in clusters, which no formula of independent misses has), not what a live
switch costs.

Three loops are replayed per repeat: **adaptive** (the table alone), **served** (``ServedCosts()``, cost trials)
and **explore** (``ServedCosts(slo_trials=True)``), beside the fixed plans, with each SLO trial's start, end and
verdict.

    env PYTHONPATH=src .venv/bin/python benchmarks/trial_replay.py --out granularity_s20i --app image --load steady
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import granularity as g
import numpy as np
from _arms import first_load
from _common import KEPT, RESULTS, console, load_result, save

from shoal.app import SLO
from shoal.policy.granularity import Candidate, GranularityController, Horizon, best_candidate, observe_load
from shoal.policy.served import ServedCosts, react_window
from shoal.predict.measured import MeasuredPredictor
from shoal.runtime.replay import ReplayResult

HORIZON_S = 90.0  # the experiment's --horizon-s
OVERLAP_S = 2.0  # the loop's first guess of a switch's overlap (AdaptiveLoop's switch_overlap_s)


def table_of(out: str, app: str) -> MeasuredPredictor:
    name = f"{out}_{app}_measured.json"
    path = RESULTS / name if (RESULTS / name).exists() else KEPT / name
    if not path.exists():
        raise SystemExit(f"no measured table {name} in results/ or benchmarks/results/")
    return MeasuredPredictor.load(path)


def replay_loop(
    table: MeasuredPredictor,
    plans: list[str],
    runs: dict[str, ReplayResult],
    slo_s: float,
    expected: tuple[float, float],
    served: ServedCosts | None,
) -> dict[str, Any]:
    """One loop over one repeat's fixed runs: its plan per window, SLO hit and cost of the windows it served, and
    the trials it made."""
    windows = {p: runs[p].windows(g.WINDOW_S, slo_s) for p in plans}
    arrivals = runs[plans[0]].arrival_s
    n = min(len(w) for w in windows.values())

    def score(load: Any) -> list[Candidate]:
        return [Candidate(p, (s := table.predict(p, load)).slo_hit, s.cost_per_s) for p in plans]

    first = first_load(windows[plans[0]][0]["requests"] / g.WINDOW_S, expected, g.WINDOW_S, HORIZON_S)
    current = best_candidate(score(first), g.CONTROLLER.slo_target).plan
    controller = GranularityController(g.CONTROLLER)
    horizon = Horizon(HORIZON_S, g.WINDOW_S, "load", expected_burst=expected[1], expected_rate=expected[0])
    counts: dict[str, tuple[int, int]] = {}
    spent = {p: 0.0 for p in plans}
    moved_at, served_plans, events = -np.inf, [], []
    requests = hits = cost = 0.0
    for k in range(n):
        for p in plans:  # every plan's fixed run was live all along: its spend so far
            spent[p] += max(0.0, windows[p][k]["cost_usd"])
        w = windows[current][k]
        requests += w["requests"]
        won = round((w["slo_hit"] if w["requests"] else 1.0) * w["requests"])
        hits += won
        cost += max(0.0, w["cost_usd"])
        c_n, c_h = counts.get(current, (0, 0))
        counts[current] = (c_n + w["requests"], c_h + won)
        served_plans.append(current)
        now = (k + 1) * g.WINDOW_S
        load = observe_load(arrivals, now, g.WINDOW_S)
        over = horizon.load(arrivals, now)
        was = served.on_trial if served is not None else None
        decision = react_window(
            controller,
            horizon,
            served,
            now,
            current,
            load,
            score(horizon.window(load)),
            over,
            None if over is None else score(over),
            OVERLAP_S,
            lambda p=current: spent[p],
            moved_at,
            lambda: dict(counts),
        )
        trial = served.on_trial if served is not None else None
        if trial is not None and trial is not was and trial.kind == "slo":
            events.append({"t": now, "event": "trial", "to": trial.to, "reason": decision.reason})
        if was is not None and was.kind == "slo" and trial is None:
            events.append({"t": now, "event": "end", "verdict": served.verdict if served else ""})
        if decision.switch_to is not None:
            current, moved_at = decision.switch_to, now
    return {"slo_hit": hits / requests if requests else 1.0, "cost_usd": cost, "plans": served_plans, "events": events}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the experiment's results name (results/OUT_runs/ holds its runs)")
    ap.add_argument("--app", required=True, choices=list(g.APPS))
    ap.add_argument("--load", required=True, choices=["steady", "bursty", "trace"])
    ap.add_argument("--repeats", type=int, default=None, help="default: every repeat whose fixed runs are kept")
    args = ap.parse_args()
    subject = g.APPS[args.app]
    plans = list(subject.plans)
    table = table_of(args.out, args.app)
    doc = load_result(args.out)
    exp = doc.get("expected", {}).get(f"{args.app}/{args.load}")
    if exp is None:
        raise SystemExit(f"results of {args.out} have no expectation for {args.app}/{args.load} (--expect-history)")
    expected = (float(exp["rate"]), float(exp["burst"]))
    g.RUNS = RESULTS / f"{args.out}_runs"
    out: dict[str, Any] = {"out": args.out, "app": args.app, "load": args.load, "repeats": []}
    rep = 0
    while args.repeats is None or rep < args.repeats:
        paths = {p: g.run_path(args.app, kind="fixed", load=args.load, repeat=rep, plan=p) for p in plans}
        if not all(Path(p).exists() for p in paths.values()):
            break
        kept = {p: json.loads(Path(path).read_text()) for p, path in paths.items()}
        slo_s = SLO.parse(kept[plans[0]]["slo"]).latency_s
        runs = {p: ReplayResult.from_dict(d["run"]) for p, d in kept.items()}
        row: dict[str, Any] = {"repeat": rep, "fixed": {}}
        for p, run in runs.items():
            row["fixed"][p] = {
                "slo_hit": run.slo_hit(slo_s),
                "cost_usd": run.cost_between(0.0, float(kept[p]["seconds"])),
            }
        loops = {
            "adaptive": None,
            "served": ServedCosts(settle_s=g.SERVED_SETTLE_S),
            "explore": ServedCosts(settle_s=g.SERVED_SETTLE_S, slo_trials=True),
        }
        for arm, served in loops.items():
            row[arm] = replay_loop(table, plans, runs, slo_s, expected, served)
        out["repeats"].append(row)
        fixed = ", ".join(f"{p} {v['slo_hit']:.3f}/{v['cost_usd'] * 1e4:.2f}" for p, v in row["fixed"].items())
        console.print(f"repeat {rep}: fixed {fixed}")
        for arm in loops:
            r = row[arm]
            on = {p: r["plans"].count(p) for p in dict.fromkeys(r["plans"])}
            console.print(f"  {arm:8s} {r['slo_hit']:.3f}/{r['cost_usd'] * 1e4:.2f}  windows per plan {on}")
            for e in r["events"]:
                console.print(f"    {e['t']:5.0f} s {e['event']}: {e.get('to', '')} {e.get('verdict', '')}")
        rep += 1
    if not out["repeats"]:
        raise SystemExit(f"no fixed runs of {args.app}/{args.load} in {g.RUNS}: keep them (granularity.py does)")
    save(f"trial_replay_{args.out}_{args.app}_{args.load}", out)


if __name__ == "__main__":
    main()
