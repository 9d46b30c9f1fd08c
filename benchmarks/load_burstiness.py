"""Burstiness of the granularity experiments' loads, by the two measures the empirical table can be read at.

For every application and load pattern of ``granularity_gpu_sim.py`` (900-s runs, read over 600-s horizons ending
every 150 s) and ``granularity.py`` (60-s runs, read whole), over the same seeds as the experiments: the SCV of the
gaps and the burst index at 10 s (``policy.arrivals``), each as observed and as the predictor credits it
(``credible_scv``, ``credible_burst``); and the bursty calibrations' processes (``generators.bursts_index``). What it
shows: the SCV cannot tell the trace's drift from bursts, the burst index can (docs/granularity.md, "The burst
index"). Nothing is timed; seconds to run.

    .venv/bin/python benchmarks/load_burstiness.py     # writes results/load_burstiness.json
"""

from __future__ import annotations

import granularity
import granularity_gpu_sim as gpu
import numpy as np
from _common import console, save, table

from shoal.policy.arrivals import BURST_SCALE_S, credible_burst, observe_load
from shoal.predict.measured import credible_scv
from shoal.workload import generators


def readings(times: np.ndarray, ends: list[float], span: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"scv": [], "credible_scv": [], "burst": [], "credible_burst": []}
    for end in ends:
        load = observe_load(times, end, span, BURST_SCALE_S)
        out["scv"].append(load.scv)
        out["credible_scv"].append(credible_scv(load.scv, load.count))
        out["burst"].append(load.burst)
        out["credible_burst"].append(credible_burst(load))
    return out


def span_of(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}" if values else "-"


def main() -> None:
    rows, doc = [], {"burst_scale_s": BURST_SCALE_S, "loads": [], "calibration": {}}
    experiments = [
        ("gpu sim", gpu.APPS, gpu.loads, 900.0, [600.0, 750.0, 900.0], 600.0),
        ("runtime", granularity.APPS, granularity.loads, 60.0, [60.0], 60.0),
    ]
    for where, apps, draw, seconds, ends, span in experiments:
        for app, subject in apps.items():
            for load in ("steady", "bursty", "trace"):
                got: dict[str, list[float]] = {}
                for seed in range(3):
                    for k, v in readings(draw(subject, load, seconds, seed), ends, span).items():
                        got.setdefault(k, []).extend(v)
                doc["loads"].append({"experiment": where, "app": app, "load": load, "span_s": span, **got})
                rows.append([where, app, load, *(span_of(got[k]) for k in got)])
    table(
        f"Burstiness over {BURST_SCALE_S:g}-s bins (3 seeds; GPU sim: 600-s horizons, runtime: whole 60-s runs)",
        ["experiment", "app", "load", "SCV", "credible SCV", "burst index", "credible index"],
        rows,
    )
    for name, cycle in (("gpu sim", gpu.BURST_CYCLE_S), ("runtime", granularity.BURST_CYCLE_S)):
        nominal = generators.bursts_index(cycle_s=cycle, scale_s=BURST_SCALE_S)
        doc["calibration"][name] = {"cycle_s": cycle, "scv": generators.bursts_scv(), "burst": nominal}
        console.print(
            f"bursty calibration ({name}, {cycle:g}-s cycles): SCV {generators.bursts_scv():.2f}, burst index "
            f"{nominal:.3f}"
        )
    save("load_burstiness", doc)


if __name__ == "__main__":
    main()
