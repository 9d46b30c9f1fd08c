"""Profiles written by hand, in the ``shoal.profile/1`` schema, for tests of the application predictors.

A hand-written profile fixes every service time, so a test can check a prediction against arithmetic; the schema's
own validator (``Profile.from_dict``) checks each document, as it checks a measured one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import shoal
from shoal.predict import Profile

SIZES = ("small", "medium", "large")
SIZE_FACTOR = {"small": 0.5, "medium": 1.0, "large": 2.0}


def spread(median: float, cv: float = 0.1) -> dict[str, Any]:
    return {"median": median, "p10": median * 0.9, "p90": median * 1.1, "cv": cv, "n": 10}


def row(
    name: str,
    stages: Sequence[str],
    busy_ms: float,
    batch: int,
    size: str,
    *,
    kind: str = "stage",
    overhead_ms: float = 0.3,
    cv: float = 0.1,
    batching: str = "rows",
) -> dict[str, Any]:
    busy = busy_ms * SIZE_FACTOR[size]
    return {
        kind: name,
        "plan": "fine" if kind == "stage" else "coarse",
        "stages": list(stages),
        "vcpu": 1.0,
        "batch": batch,
        "batching": batching,
        "input_size": size,
        "input_bytes": 1000,
        "output_bytes": 1000,
        "latency_ms": spread(busy + overhead_ms, cv),
        "busy_ms": spread(busy, cv),
        "load_ms": 50.0,
        "cold_start_ms": 150.0,
        "peak_rss_mb": 60.0,
    }


def make_profile(
    app: shoal.App,
    busy_ms: Mapping[str, float],
    *,
    batched: Sequence[str] = (),
    gpu: Mapping[str, float] | None = None,
    cv: float = 0.1,
) -> Profile:
    """A profile of ``app``: stage ``s`` takes ``busy_ms[s]`` at input size medium (half at small, twice at large);
    a stage in ``batched`` is measured at batch 1, 2, 4, 8 (busy x (1 + 0.25 (b - 1))); ``gpu`` gives stages GPU rows
    (latency_ms at the whole GPU, batch 1, growing as 1 / SM share)."""
    rows = []
    for name in app.stages:
        for size in SIZES:
            for b in (1, 2, 4, 8) if name in batched else (1,):
                rows.append(row(name, [name], busy_ms[name] * (1 + 0.25 * (b - 1)), b, size, cv=cv))
    gpu_rows = [
        {
            "stage": s,
            "model": "m",
            "batch": b,
            "sm_percent": sm,
            "quota_percent": q,
            "latency_ms": ms * b**0.5 * 100 / sm * 100 / q,
            "source": "test",
        }
        for s, ms in (gpu or {}).items()
        for b in (1, 2, 4, 8)
        for sm in (25, 50, 100)
        for q in (50, 100)
    ]
    doc = {
        "schema": "shoal.profile/1",
        "created": "2026-11-24T00:00:00+00:00",
        "machine": {"cpu": "test", "cores": 2},
        "app": {
            "name": app.name,
            "slo": str(app.slo),
            "source": "test",
            "stages": [
                {"name": n, "after": list(s.after), "batch": n in batched, "vcpu": 1.0, "memory_mb": 512, "gpu": 0.0}
                for n, s in app.stages.items()
            ],
        },
        "settings": {
            "repeats": 10,
            "warmup": 2,
            "vcpus": [1.0],
            "batch_sizes": [1, 2, 4, 8],
            "input_sizes": list(SIZES),
            "plans": ["fine"],
            "hop_bytes": [1024],
            "inputs": "test",
        },
        "stages": rows,
        "functions": [],
        "hops": [],
        "gpu": gpu_rows,
        "notes": [],
    }
    return Profile.from_dict(doc)


def chain(n: int = 3, slo: str = "p99:50ms") -> shoal.App:
    app = shoal.App("chain", slo=slo)
    prev = None
    for i in range(n):
        prev = app.stage(name=f"s{i}", after=prev or ())(lambda x: x)
    return app


def diamond(slo: str = "p99:50ms") -> shoal.App:
    app = shoal.App("diamond", slo=slo)
    app.stage(name="a")(lambda x: x)
    app.stage(name="left", after="a")(lambda x: x)
    app.stage(name="right", after="a")(lambda x: x)
    app.stage(name="join", after=["left", "right"])(lambda x, y: x)
    return app
