"""What ``shoal train`` needs besides :func:`shoal.train.train`: reading ``--data`` and printing the result."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from shoal.train.data import load_array, make_blobs, make_logistic, split_labels
from shoal.train.job import TrainResult

__all__ = ["read_data", "render_result"]

_SYNTHETIC = re.compile(r"^synthetic:(\d+)x(\d+)$")


def read_data(
    algorithm: str, data: str, labels: str | None = None, k: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """``--data``: a .npy/.csv/.parquet file, or ``synthetic:ROWSxCOLS`` (blobs for k-means, a logistic model for
    logreg). For logreg without ``--labels`` the file's last column holds the labels."""
    m = _SYNTHETIC.match(data.strip())
    if m:
        n, d = int(m[1]), int(m[2])
        if algorithm == "kmeans":
            return make_blobs(n, d, centers=k, seed=seed)[0], None
        return make_logistic(n, d, seed=seed)
    X = load_array(data)
    if algorithm == "kmeans":
        return X, None
    if labels is not None:
        return X, load_array(labels)[:, 0]
    return split_labels(X)


def render_result(result: TrainResult, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{result.algorithm}: {result.workers} workers x {result.cores} cores, {result.backend}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("rounds", str(len(result.losses)))
    for s in result.scale_ins:
        table.add_row("autotune", f"{s['workers'] + 1} -> {s['workers']} workers from round {s.get('from_round', '?')}")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.6g}")
    table.add_row("wall (ms)", f"{result.wall_s * 1e3:.1f}")
    busy = max((w.get("compute_s", 0.0) + w.get("sync_s", 0.0)) for w in result.per_worker)
    sync = max(w.get("sync_s", 0.0) for w in result.per_worker)
    table.add_row("slowest worker: rounds (ms)", f"{busy * 1e3:.1f}")
    table.add_row("slowest worker: waiting on the store (ms)", f"{sync * 1e3:.1f}")
    if result.cost is not None:
        bill, res = result.cost["user_bill"], result.cost["resource_cost"]
        table.add_row("user bill (USD)", f"{bill['usd']:.8f}")
        table.add_row("billed vCPU-s", f"{bill['vcpu_s']:.3f}")
        table.add_row("resource cost (USD)", f"{res['usd']:.8f}" if res else f"not visible on {result.backend}")
    else:
        table.add_row("cost", f"not metered by the {result.backend} back end")
    console.print(table)
