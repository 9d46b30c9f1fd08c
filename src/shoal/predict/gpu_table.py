"""GPU rows of a profile, read from a latency table measured elsewhere (there is no GPU here)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from shoal.predict.fields import ProfileError
from shoal.predict.profile import GPU_TABLE_SOURCE, GpuPoint

__all__ = [
    "GPU_TABLE_SOURCE",
    "ZOO_GPU_MODELS",
    "GPU_BATCHES",
    "GPU_SM_PERCENTS",
    "GPU_QUOTA_PERCENTS",
    "table_model",
    "read_gpu_table",
]

#: Which model of the GPU table stands for each backbone of ``shoal.zoo`` (None: no counterpart in the table).
ZOO_GPU_MODELS: dict[str, str | None] = {
    "small_cnn": None,
    "resnet18_like": "resnet18",
    "resnet50_like": "resnet50",
    "mobilenet_v2_like": "mobilenet_v2",
}
#: The points of the GPU table copied into a profile: every batch size, three SM partitions, two time quotas.
GPU_BATCHES = (1, 2, 4, 8)
GPU_SM_PERCENTS = (25, 50, 100)
GPU_QUOTA_PERCENTS = (50, 100)


def table_model(name: str) -> str | None:
    """The GPU table's model for ``name``: a zoo backbone (``resnet18_like``) is mapped by :data:`ZOO_GPU_MODELS`;
    any other name is taken as a table model (``resnet18``) as it is."""
    return ZOO_GPU_MODELS.get(name, name)


def read_gpu_table(
    path: str | os.PathLike[str],
    models: Mapping[str, str],
    batches: Iterable[int] = GPU_BATCHES,
    sm_percents: Iterable[int] = GPU_SM_PERCENTS,
    quota_percents: Iterable[int] = GPU_QUOTA_PERCENTS,
) -> tuple[list[GpuPoint], list[str]]:
    """GPU rows for ``models`` (stage -> table model) from a table of columns ``model, batch, sm_percent,
    quota_percent, latency_ms``; also notes on models the table lacks."""
    want_b, want_s, want_q = set(batches), set(sm_percents), set(quota_percents)
    by_model: dict[str, list[str]] = {}
    for stage, model in models.items():
        by_model.setdefault(model, []).append(stage)
    rows: list[GpuPoint] = []
    seen: set[str] = set()
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"model", "batch", "sm_percent", "quota_percent", "latency_ms"} - set(reader.fieldnames or [])
            if missing:
                raise ProfileError(f"GPU table {str(path)!r} lacks the columns {sorted(missing)}")
            for r in reader:
                stages = by_model.get(r["model"])
                if not stages:
                    continue
                seen.add(r["model"])
                b, s, q = int(r["batch"]), int(r["sm_percent"]), int(r["quota_percent"])
                if b in want_b and s in want_s and q in want_q:
                    rows.extend(GpuPoint(st, r["model"], b, s, q, float(r["latency_ms"])) for st in stages)
    except OSError as e:
        raise ProfileError(f"cannot read the GPU table {str(path)!r}: {e.strerror or e}") from None
    notes = [
        f"GPU table {Path(path).name} has no model {m!r} (asked for stage {', '.join(by_model[m])}): no GPU rows"
        for m in by_model
        if m not in seen
    ]
    rows.sort(key=lambda g: (g.stage, g.batch, g.sm_percent, g.quota_percent))
    return rows, notes
