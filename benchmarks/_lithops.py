"""The Lithops side of the training benchmarks: one executor per worker count, and maps that survive being lost.

Lithops' localhost back end (3.8.0, as installed here) now and then never runs a map submitted right after the
previous one finished: its job manager is stopping as the new job arrives (the runner log shows the job written,
never started). And with a fresh executor per repeat, a later executor's ``get_result`` sometimes never returned
although its calls had finished. So the benchmarks keep one executor per W for all repeats, and submit a map again
when it is not done after ``LOST_MAP_S``; the time lost is counted and left out of Lithops' figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LOST_MAP_S", "executor", "lithops_session", "map_retrying"]

#: A map that has not finished in this long is taken as lost and submitted again (calls take well under a second).
LOST_MAP_S = 10.0

_FEXECS: dict[int, Any] = {}


def executor(workers: int) -> Any:
    """The session's Lithops executor for ``workers`` workers (localhost back end)."""
    if workers not in _FEXECS:
        import lithops

        from shoal.engines.lithops import localhost_config

        _FEXECS[workers] = lithops.FunctionExecutor(config=localhost_config(workers), log_level=None)
    return _FEXECS[workers]


def map_retrying(fexec: Any, fn: Callable[..., Any], iterdata: list[Any], lost: list[float]) -> tuple[list[Any], float]:
    """``fexec.map(fn, iterdata)``, submitted again when it does not finish within ``LOST_MAP_S``.

    Returns the futures and the seconds spent on lost maps (each loss is also appended to ``lost``).
    """
    spent = 0.0
    while True:
        t = time.perf_counter()
        fs = fexec.map(fn, iterdata)
        try:  # Lithops' wait raises TimeoutError (from a SIGALRM) when the timeout passes
            _, pending = fexec.wait(fs, timeout=LOST_MAP_S, show_progressbar=False)
            if not pending:
                return fs, spent
        except TimeoutError:
            pass
        spent += time.perf_counter() - t
        lost.append(spent)
        if len(lost) > 20:
            raise RuntimeError("Lithops lost more than 20 maps")


@contextlib.contextmanager
def lithops_session() -> Iterator[None]:
    """A private TMPDIR for Lithops' job files (other sessions here use Lithops too); executors closed at the end."""
    private_tmp = tempfile.mkdtemp(prefix="shoal-bench-lithops-")
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = private_tmp  # Lithops' runner and workers inherit it
    tempfile.tempdir = None
    try:
        yield
    finally:
        for fexec in _FEXECS.values():
            fexec.__exit__(None, None, None)  # what `with` does: stop its monitor, invoker and runner
        _FEXECS.clear()
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old
        tempfile.tempdir = None
        shutil.rmtree(private_tmp, ignore_errors=True)


def run_rounds(
    workers: int,
    partial: Callable[..., Any],
    model: Any,
    payload: Callable[[Any], Any],
    apply: Callable[[Any, Any], tuple[Any, float]],
    paths: list[str],
    rounds: int,
) -> dict[str, Any]:
    """What a Lithops user writes: one ``map`` per round over the shards, reduced and applied in the driver.

    Returns the final model and loss, per-round wall times (a lost map's timeout left out), the calls' execution
    seconds (what a FaaS bills), the lost maps and the wall time from before the executor was made."""
    import numpy as np

    t = time.perf_counter()
    fexec = executor(workers)  # one per W for all repeats: see executor()
    lost: list[float] = []
    loss, iter_s, call_s = 0.0, [], 0.0
    for _ in range(rounds):
        t1 = time.perf_counter()
        fs, lost_s = map_retrying(fexec, partial, [(p, payload(model)) for p in paths], lost)
        parts = fexec.get_result(fs)
        t += lost_s  # a lost map's timeout is not Lithops' speed: left out of the time to target (counted in `lost`)
        iter_s.append(time.perf_counter() - t1 - lost_s)
        call_s += sum(float(f.stats.get("worker_exec_time", 0.0)) for f in fs)
        model, loss = apply(model, np.sum(parts, axis=0))
    return {
        "model": model,
        "loss": loss,
        "iter_s": iter_s,
        "call_s": call_s,
        "lost": lost,
        "wall": time.perf_counter() - t,
    }
