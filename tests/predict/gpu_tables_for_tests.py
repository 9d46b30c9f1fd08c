"""Small GPU latency tables in the schema of ../shared/gpu-profiles/, written by the tests.

Each model's latency follows a made-up but GPU-like law (a fixed launch cost plus work that grows with batch and
shrinks with the SM partition, and a time-slicing penalty under a small quota), so that a predictor fitted on some
models has something real to learn about the others.
"""

from __future__ import annotations

from pathlib import Path

BATCHES = (1, 2, 4, 8)
SMS = (10, 25, 50, 100)
QUOTAS = (10, 20, 50, 100)
HEADER = "model,batch,sm_percent,quota_percent,latency_ms\n"


def latency(launch: float, work: float, window: float, b: int, s: int, q: int) -> float:
    busy = launch + work * b / min(1.0, s / 100 * 4)  # work saturates the device above a quarter of the SMs
    slices = max(1.0, busy / (q / 100 * window))
    return busy + (slices - 1) * (1 - q / 100) * window


def models(n: int) -> dict[str, tuple[float, float, float]]:
    """``n`` models with launch cost, work per sample and time-slice window spread over a range."""
    return {f"net{i}": (1.0 + 0.7 * i, 0.5 + 1.3 * ((i * 7) % n) / n, 20.0 + 3 * (i % 5)) for i in range(n)}


def write_table(path: Path, params: dict[str, tuple[float, float, float]]) -> Path:
    lines = [HEADER]
    for name, (launch, work, window) in params.items():
        for b in BATCHES:
            for s in SMS:
                for q in QUOTAS:
                    lines.append(f"{name},{b},{s},{q},{latency(launch, work, window, b, s, q):.4f}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path
