"""The shared loop of the training benchmarks (train_kmeans.py, train_logreg.py): every configuration, repeated,
with a private redis-server and Lithops session around all of them, the machine's quiet checked before each
configuration and the other cores' load measured during each repeat."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from _common import Interference, console, summary, wait_quiet
from _lithops import lithops_session

from shoal.train.redisserver import RedisServer

__all__ = ["Runs", "run_configs"]

#: ``runs[key]``: one result dict per repeat; key is ``"{system} {W}x{C}"``.
Runs = dict[str, list[dict[str, Any]]]


def run_configs(
    configs: Sequence[tuple[str, int, int]],
    repeats: int,
    one: Callable[[str, int, int, str, str], dict[str, Any]],
    line: Callable[[dict[str, Any]], str],
) -> tuple[Runs, Callable[[str, str], dict[str, float]]]:
    """Run ``one(system, W, C, redis_url, tmp_dir)`` ``repeats`` times per configuration; ``line(result)`` is the
    progress line. Returns the runs and ``s(key, field)``: the median/min/max of a field over a key's repeats."""
    runs: Runs = {}
    session = lithops_session()  # Lithops' job files in a private TMPDIR; executors closed at the end
    session.__enter__()
    srv = RedisServer()
    srv.start()
    tmp = tempfile.mkdtemp(prefix="shoal-bench-train-")
    try:
        for system, w, c in configs:
            key = f"{system} {w}x{c}"
            busy = wait_quiet(patience_s=30)
            runs[key] = []
            for rep in range(repeats):
                with Interference() as noise:
                    res = one(system, w, c, srv.url, tmp)
                res |= {"repeat": rep, "other_cores": noise.other_cores, "background_busy": busy}
                runs[key].append(res)
                console.print(f"[dim]{key} #{rep}: {line(res)}, other cores {noise.other_cores}[/]")
    finally:
        srv.close()
        session.__exit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)

    def s(key: str, field: str) -> dict[str, float]:
        return summary([r[field] for r in runs[key]])

    return runs, s


def save_results(
    name: str, args: Any, settings: dict[str, Any], runs: dict[str, Any], ratios: dict[str, float], stat: Callable
) -> None:
    """Write results/NAME.json the way both training benchmarks report: command, settings, machine, runs, medians."""
    import sys

    from _common import machine_info, save

    save(
        name,
        {
            "benchmark": name,
            "command": " ".join([".venv/bin/python", *sys.argv]),
            "settings": vars(args) | settings,
            "machine": machine_info(),
            "runs": runs,
            "summary": {k: {f: stat(k, f) for f in ("iter_ms", "to_target_s", "vcpu_s")} for k in runs},
            "ratios": ratios,
        },
    )
