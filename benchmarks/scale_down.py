"""Scaling down: surplus instances stopped after a short pause against kept for the whole keep-alive.

An instance above the autoscaler's desired count (one a burst or a panic scale-up started) now goes once it has
been idle for ``FunctionConfig.surplus_idle_s`` (1 s); before, it waited for the keep-alive like the function's last
instance (``surplus_idle_s = keep_alive_s``). The pool hands a request to its oldest free instance, but with the
older ones all busy the surplus one gets it, so it rarely idled for a whole keep-alive and was billed for minutes
(docs/runtime.md, "Scaling and keep-alive"). This runs every fixed plan of the simulator's GPU scenarios
(``granularity_gpu_sim.py``: apps, loads, cluster, keep-alive 10 s) both ways on the same seeded arrivals and
reports SLO hit rate and resource cost, mean and 95 % CI over repeats.

    .venv/bin/python benchmarks/scale_down.py                 # 3 apps x steady, bursty x 3 repeats, 10 min each
    .venv/bin/python benchmarks/scale_down.py --apps fanout --loads steady --repeats 2 --minutes 2   # smoke run

Writes results/scale_down.json and results/scale_down.md (a markdown table).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import granularity_gpu_sim as scenarios
from _arms import ci95
from _common import RESULTS, console, machine_info, save

from shoal.app import FunctionConfig
from shoal.sim import GpuTable

KEEP_ALIVE_S = scenarios.fn_config().keep_alive_s
SETTINGS = {"keep-alive": KEEP_ALIVE_S, "surplus pause": FunctionConfig().surplus_idle_s}


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
        "settings": vars(args) | {"surplus_idle_s": SETTINGS, "keep_alive_s": KEEP_ALIVE_S},
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
                for setting, pause in SETTINGS.items():
                    scenarios.fn_config = lambda pause=pause: FunctionConfig(  # type: ignore[misc]
                        max_instances=base.max_instances, keep_alive_s=base.keep_alive_s, surplus_idle_s=pause
                    )
                    hits, costs = [], []
                    for rep in range(args.repeats):
                        times = scenarios.loads(subject, load, seconds, seed=rep)
                        run = scenarios.simulate(app, models, label, times, seconds, rep, gpu)
                        hits.append(run.slo_hit)
                        costs.append(run.cost_usd)
                    row[setting] = {"slo_hit": hits, "cost_usd": costs}
                doc["rows"].append(row)
                a, b = (row[s] for s in SETTINGS)
                console.print(
                    f"{name}/{load} {label:42s} hit {ci95(a['slo_hit'])[0]:.4f} -> {ci95(b['slo_hit'])[0]:.4f}  "
                    f"cost {ci95(a['cost_usd'])[0]:.4f} -> {ci95(b['cost_usd'])[0]:.4f}"
                )
    save("scale_down", doc)
    (RESULTS / "scale_down.md").write_text(report(doc))
    console.print(report(doc))


def report(doc: dict[str, Any]) -> str:
    keep, pause = SETTINGS
    lines = [
        f"| app | load | plan | SLO hit, {keep} | SLO hit, {pause} | cost USD, {keep} | cost USD, {pause} | cost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        (h0, hs0), (h1, hs1) = (ci95(r[s]["slo_hit"]) for s in (keep, pause))
        (c0, cs0), (c1, cs1) = (ci95(r[s]["cost_usd"]) for s in (keep, pause))
        lines.append(
            f"| {r['app']} | {r['load']} | {r['plan']} | {h0:.4f} ± {hs0:.4f} | {h1:.4f} ± {hs1:.4f} | "
            f"{c0:.4f} ± {cs0:.4f} | {c1:.4f} ± {cs1:.4f} | {c1 / c0 - 1:+.1%} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
