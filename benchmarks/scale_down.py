"""Scaling defaults, before and after: Knative's scale-down and target against the keep-alive holding the surplus.

Before: an instance above the autoscaler's desired count waited for the keep-alive like the function's last one, and
a one-request instance's target concurrency was 1 (Knative's 70 % rounded up). The pool hands a request to its
oldest free instance, but with the older ones all busy the surplus one gets it, so the surplus a burst started
rarely idled for a whole keep-alive and was billed for minutes; it also gave the headroom a target of 1 leaves out.
After (the defaults now): the surplus goes once idle for ``FunctionConfig.surplus_idle_s`` (1 s), and the target is
0.7 of a request (docs/runtime.md, "Scaling and keep-alive"). "pause only" is the first change without the second.
This runs every fixed plan of the simulator's GPU scenarios (``granularity_gpu_sim.py``: apps, loads, cluster,
keep-alive 10 s) each way on the same seeded arrivals and reports SLO hit rate and resource cost, mean and 95 % CI
over repeats.

    .venv/bin/python benchmarks/scale_down.py                 # 3 apps x steady, bursty x 3 repeats, 10 min each
    .venv/bin/python benchmarks/scale_down.py --apps fanout --loads steady --repeats 2 --minutes 2   # smoke run

Writes results/scale_down.json and results/scale_down.md (a markdown table).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import granularity_gpu_sim as scenarios
from _arms import ci95
from _common import RESULTS, console, machine_info, save

from shoal.sim import GpuTable

KEEP_ALIVE_S = scenarios.fn_config().keep_alive_s
SETTINGS: dict[str, dict[str, Any]] = {
    "before": {"surplus_idle_s": KEEP_ALIVE_S, "target_concurrency": 1.0},
    "pause only": {"target_concurrency": 1.0},
    "after": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps", nargs="+", default=list(scenarios.APPS), choices=list(scenarios.APPS))
    ap.add_argument("--loads", nargs="+", default=["steady", "bursty"], choices=["steady", "bursty", "trace"])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.repeats < 1 or not args.minutes > 0:
        ap.error("need --repeats >= 1 and --minutes > 0")
    seconds = args.minutes * 60.0
    gpu = GpuTable.load()
    doc: dict[str, Any] = {
        "machine": machine_info(),
        "settings": vars(args) | {"configs": SETTINGS, "keep_alive_s": KEEP_ALIVE_S},
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "rows": [],
    }
    base = scenarios.fn_config()
    for name in args.apps:
        subject = scenarios.APPS[name]
        app, models = subject.build()
        for load in args.loads:
            for label in subject.plans:
                row: dict[str, Any] = {"app": name, "load": load, "plan": label}
                for setting, changes in SETTINGS.items():
                    scenarios.fn_config = lambda changes=changes: replace(base, **changes)  # type: ignore[misc]
                    hits, costs = [], []
                    for rep in range(args.repeats):
                        times = scenarios.loads(subject, load, seconds, seed=rep)
                        run = scenarios.simulate(app, models, label, times, seconds, rep, gpu)
                        hits.append(run.slo_hit)
                        costs.append(run.cost_usd)
                    row[setting] = {"slo_hit": hits, "cost_usd": costs}
                doc["rows"].append(row)
                console.print(
                    f"{name}/{load} {label:42s} "
                    + "  ".join(
                        f"{s} {ci95(row[s]['slo_hit'])[0]:.4f}/{ci95(row[s]['cost_usd'])[0]:.4f}" for s in SETTINGS
                    )
                )
    save("scale_down", doc)
    (RESULTS / "scale_down.md").write_text(report(doc))
    console.print(report(doc))


def report(doc: dict[str, Any]) -> str:
    """SLO hit rate and cost (mean ± 95 % CI) per setting, and the cost change of each setting against the first."""
    names = list(SETTINGS)
    head = [f"SLO hit, {s}" for s in names] + [f"cost USD, {s}" for s in names] + [f"cost, {s}" for s in names[1:]]
    lines = ["| app | load | plan | " + " | ".join(head) + " |", "|---" * (3 + len(head)) + "|"]
    for r in doc["rows"]:
        hits = [ci95(r[s]["slo_hit"]) for s in names]
        costs = [ci95(r[s]["cost_usd"]) for s in names]
        cells = [f"{m:.4f} ± {h:.4f}" for m, h in hits] + [f"{m:.4f} ± {h:.4f}" for m, h in costs]
        cells += [f"{c[0] / costs[0][0] - 1:+.1%}" for c in costs[1:]]
        lines.append(f"| {r['app']} | {r['load']} | {scenarios._short(r['plan'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
